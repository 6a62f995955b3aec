package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// collected is what a ManualReader gathered: each data point's value, keyed
// by the instrument's name and its attributes in order, "name{k=v,...}";
// histograms give their count.
type collected map[string]float64

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	c := collected{}
	key := func(name string, set attribute.Set) string {
		var kvs []string
		for _, kv := range set.ToSlice() {
			kvs = append(kvs, string(kv.Key)+"="+kv.Value.String())
		}
		return name + "{" + strings.Join(kvs, ",") + "}"
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					c[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					c[key(m.Name, p.Attributes)] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					c[key(m.Name, p.Attributes)] = float64(p.Count)
					// Buckets in seconds, not the SDK's default, made for
					// milliseconds.
					if m.Name == "dynamostore.operation.duration" && (len(p.Bounds) < 2 || p.Bounds[1] > 0.01) {
						t.Errorf("got buckets %v for %s: expected them in seconds", p.Bounds, m.Name)
					}
				}
			default:
				t.Fatalf("unexpected data %T for %s", m.Data, m.Name)
			}
		}
	}
	return c
}

// TestMetrics runs a scripted sequence and checks every count it gives.
func TestMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	s := newStoreWith(t, nil, clockAhead, func(o *Options) { o.MeterProvider = mp })
	c := NewCached(s, func(o *CacheOptions) { o.MeterProvider = mp; o.SkipWriteWithin = time.Minute })
	const token, data = "tok3n-metric-5e", "d4t4-metric-77"
	session := bytes.Repeat([]byte(data), 1024/len(data)) // about 1 KB
	expiry := liveAt()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Commit(token, session, expiry))
	if _, found, err := s.Find(token); !found || err != nil {
		t.Fatalf("got %v, %v: expected the session", found, err)
	}
	if _, found, _ := s.Find(token + "-absent"); found {
		t.Fatal("expected no session")
	}
	must(s.Delete(token))
	must(s.Commit("expired", []byte(data), expiredAt()))
	must(c.Commit("cached", []byte(data), expiry))                             // a commit
	mustFind(t, c, "cached", data)                                             // a hit
	mustFind(t, c, "absent", "")                                               // a miss: a find, not found
	must(c.Commit("cached", []byte(data), expiry.Add(time.Second)))            // a skipped write
	if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil { // scans 3 items: the Delete's revocation too
		t.Fatalf("got %d, %v: expected the expired session swept", n, err)
	}

	got := collect(t, reader)
	table := "table=" + s.tableName
	want := collected{
		"dynamostore.operations{operation=commit,outcome=ok," + table + "}":         3,
		"dynamostore.operations{operation=find,outcome=ok," + table + "}":           1,
		"dynamostore.operations{operation=find,outcome=not_found," + table + "}":    2,
		"dynamostore.operations{operation=delete,outcome=ok," + table + "}":         1,
		"dynamostore.operations{operation=delete_expired,outcome=ok," + table + "}": 1,
		"dynamostore.operation.duration{operation=commit," + table + "}":            3,
		"dynamostore.operation.duration{operation=find," + table + "}":              3,
		"dynamostore.operation.duration{operation=delete," + table + "}":            1,
		"dynamostore.operation.duration{operation=delete_expired," + table + "}":    1,
		"dynamostore.cache.lookups{result=hit," + table + "}":                       1,
		"dynamostore.cache.lookups{result=miss," + table + "}":                      1,
		"dynamostore.cache.skipped_writes{" + table + "}":                           1,
		"dynamostore.sweep.items{result=scanned," + table + "}":                     3,
		"dynamostore.sweep.items{result=deleted," + table + "}":                     1,
		"dynamostore.sweep.duration{" + table + "}":                                 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("got %s = %v: expected %v", k, got[k], v)
		}
	}
	// Capacity, as DynamoDB Local and dynalite both report it: a write unit
	// per started KB (2 for the 1 KB session, whose key and expiry take it
	// just over, 1 for each small one, and as much to delete it); a
	// strongly consistent read unit per started 4 KB, absent items
	// included; the sweep's eventually consistent Scan of two small items,
	// half a unit, and its delete, one.
	capacity := map[string]float64{
		"kind=read,operation=find":            3,
		"kind=write,operation=commit":         4,
		"kind=write,operation=delete":         2,
		"kind=read,operation=delete_expired":  0.5,
		"kind=write,operation=delete_expired": 1,
	}
	for attrs, v := range capacity {
		want["dynamostore.capacity{"+attrs+","+table+"}"] = v
		if k := "dynamostore.capacity{" + attrs + "," + table + "}"; got[k] != v {
			t.Errorf("got %s = %v: expected %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("got %s = %v: expected no such data point", k, got[k])
		}
		if strings.Contains(k, token) || strings.Contains(k, data) || strings.Contains(k, "cached") {
			t.Errorf("data point %s carries a token or data", k)
		}
	}
}

// TestMetricsLeaseHeld: the lease gauge is 1 while a store holds the
// sweeper lease, and 0 once it stopped.
func TestMetricsLeaseHeld(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	fns := newTable(t, func(o *Options) { o.MeterProvider = mp; o.SweepWithTTL = true })
	s := NewWithCleanupInterval(newClient(t), 20*time.Millisecond, fns...)
	held := fmt.Sprintf("dynamostore.sweep.lease_held{table=%s}", s.tableName)
	waitUntil(t, "the lease held", func() bool { return collect(t, reader)[held] == 1 })
	s.StopCleanup()
	if got := collect(t, reader)[held]; got != 0 {
		t.Fatalf("got %v: expected 0 once stopped", got)
	}
}

// brokenCache is a shared cache layer whose every call fails, as a Redis
// that is down would.
type brokenCache struct{}

var errCacheDown = errors.New("cache down")

func (brokenCache) Find(string) ([]byte, bool, error)      { return nil, false, errCacheDown }
func (brokenCache) Commit(string, []byte, time.Time) error { return errCacheDown }
func (brokenCache) Delete(string) error                    { return errCacheDown }
func (brokenCache) Lookup(context.Context, string, bool) (CacheLookup, error) {
	return CacheLookup{}, errCacheDown
}
func (brokenCache) Fill(context.Context, string, uint64, *CacheEntry, time.Time) error {
	return errCacheDown
}
func (brokenCache) BeginWrite(context.Context, string) (uint64, error) { return 0, errCacheDown }
func (brokenCache) EndWrite(context.Context, string, uint64, *CacheEntry, time.Time) error {
	return errCacheDown
}

// TestMetricsCacheErrors: each failed call to the cache layer counts; a
// failed lookup costs the caller a miss, and a write the cache cannot be
// told of is refused, so that no instance serves a stale copy.
func TestMetricsCacheErrors(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	s := newStore(t, nil)
	c := NewCached(s, func(o *CacheOptions) { o.MeterProvider = mp; o.Cache = brokenCache{} })
	if err := c.Commit("token", []byte("new"), time.Now().Add(time.Hour)); !errors.Is(err, errCacheDown) { // the cache cannot be told
		t.Fatalf("got %v: expected the cache's error", err)
	}
	mustFind(t, s, "token", "") // nothing written
	if err := s.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "token", "data") // the cache read fails: no lease, no fill
	got := collect(t, reader)
	table := "table=" + s.tableName
	if e, m := got["dynamostore.cache.errors{"+table+"}"], got["dynamostore.cache.lookups{result=miss,"+table+"}"]; e != 2 || m != 1 {
		t.Fatalf("got %v errors, %v misses: expected 2 and 1", e, m)
	}
}

// rccSpy records what each PutItem asked DynamoDB to report.
type rccSpy struct {
	Client
	asked []types.ReturnConsumedCapacity
}

func (c *rccSpy) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.asked = append(c.asked, in.ReturnConsumedCapacity)
	return c.Client.PutItem(ctx, in, optFns...)
}

// TestCapacityAskedOnlyWhenRecorded: the store asks DynamoDB for consumed
// capacity, which costs DynamoDB Local about 13 % of a PutItem, only while
// something records it: not with no provider, nor with a View that drops
// dynamostore.capacity.
func TestCapacityAskedOnlyWhenRecorded(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	recording := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	dropping := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "dynamostore.capacity"}, sdkmetric.Stream{Aggregation: sdkmetric.AggregationDrop{}})))
	for _, c := range []struct {
		name string
		mp   metric.MeterProvider
		want types.ReturnConsumedCapacity
	}{{"no provider", nil, ""}, {"recording", recording, types.ReturnConsumedCapacityTotal}, {"capacity dropped", dropping, ""}} {
		spy := &rccSpy{Client: newClient(t)}
		s := NewWithCleanupInterval(spy, 0, append(fns, func(o *Options) { o.MeterProvider = c.mp })...)
		if err := s.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if len(spy.asked) != 1 || spy.asked[0] != c.want {
			t.Fatalf("%s: got %q: expected %q", c.name, spy.asked, c.want)
		}
	}
}
