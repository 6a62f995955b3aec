package dynamostore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/dynamostore/dynamostore/internal/ddblocal"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// sweepItems is how many expired sessions BenchmarkSweep loads; the
// environment variable DYNAMOSTORE_BENCH_SWEEP_ITEMS changes it.
func sweepItems() int {
	if n, err := strconv.Atoi(os.Getenv("DYNAMOSTORE_BENCH_SWEEP_ITEMS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// loadExpired writes n sessions that expired two hours ago, 25 to a
// BatchWriteItem, from 8 goroutines.
func loadExpired(b *testing.B, client *dynamodb.Client, table string, n int) {
	exp := strconv.FormatInt(time.Now().Add(-2*time.Hour).Unix(), 10)
	batches := make(chan []types.WriteRequest)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for reqs := range batches {
				for len(reqs) > 0 {
					out, err := client.BatchWriteItem(context.Background(), &dynamodb.BatchWriteItemInput{
						RequestItems: map[string][]types.WriteRequest{table: reqs},
					})
					if err != nil {
						b.Error(err)
						return
					}
					reqs = out.UnprocessedItems[table]
				}
			}
		}()
	}
	data := make([]byte, 200)
	var reqs []types.WriteRequest
	for i := range n {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
			"session_key": &types.AttributeValueMemberS{Value: fmt.Sprintf("expired-%07d", i)},
			"data":        &types.AttributeValueMemberB{Value: data},
			"expires":     &types.AttributeValueMemberN{Value: exp},
		}}})
		if len(reqs) == 25 || i == n-1 {
			batches <- reqs
			reqs = nil
		}
	}
	close(batches)
	wg.Wait()
}

// BenchmarkSweep deletes expired sessions with DeleteExpired beside the
// simplest reaper: one Scan, then one DeleteItem per expired item, in
// sequence. Each iteration loads the items first, untimed. Directly against
// DynamoDB Local, on a small machine, the server's CPU is the limit; through
// a proxy that adds 4 ms to every request, as a network would, latency is.
func BenchmarkSweep(b *testing.B) {
	sweepers := []struct {
		name  string
		sweep func(ctx context.Context, s *DynamoStore, client Client) (int, error)
	}{
		{"sequential", sequentialReap},
		{"DeleteExpired", func(ctx context.Context, s *DynamoStore, _ Client) (int, error) {
			return s.DeleteExpired(ctx)
		}},
		{"DeleteExpired-4-segments", func(ctx context.Context, s *DynamoStore, _ Client) (int, error) {
			s.segments = 4
			return s.DeleteExpired(ctx)
		}},
	}
	for _, network := range []struct {
		name    string
		latency time.Duration
		items   int
	}{
		{"local", 0, sweepItems()},
		{"4ms-latency", 4 * time.Millisecond, sweepItems() / 20},
	} {
		for _, c := range sweepers {
			b.Run(network.name+"/"+c.name, func(b *testing.B) {
				n := network.items
				var total time.Duration
				for b.Loop() {
					b.StopTimer()
					name := newTableName(b)
					ddblocal.CreateTableWithoutTTL(b, newClient(b), name, "session_key", types.ScalarAttributeTypeS)
					fns := []func(*Options){func(o *Options) { o.TableName = name }}
					direct := newClient(b)
					client := direct
					if network.latency > 0 {
						proxy := newFaultProxy(b, endpoint, 0)
						proxy.delay = network.latency
						client, _ = faultClient(proxy)
					}
					s := NewWithCleanupInterval(client, 0, fns...)
					loadExpired(b, direct, s.tableName, n)
					b.StartTimer()
					start := time.Now()
					deleted, err := c.sweep(context.Background(), s, client)
					total += time.Since(start)
					if err != nil || deleted != n {
						b.Fatalf("deleted %d, %v: expected %d", deleted, err, n)
					}
				}
				b.ReportMetric(float64(n*b.N)/total.Seconds(), "items/s")
			})
		}
	}
}

// sequentialReap is the baseline: Scan for expired items, and delete each in
// turn with an unconditional DeleteItem.
func sequentialReap(ctx context.Context, s *DynamoStore, client Client) (int, error) {
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{
		TableName:                 s.table,
		ProjectionExpression:      aws.String("#k"),
		FilterExpression:          aws.String("#e <= :now"),
		ExpressionAttributeNames:  map[string]string{"#k": s.keyAttr, "#e": s.expiryAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Unix(), 10)}},
	})
	deleted := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return deleted, err
		}
		for _, item := range page.Items {
			if _, err := client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
				TableName: s.table,
				Key:       map[string]types.AttributeValue{s.keyAttr: item[s.keyAttr]},
			}); err != nil {
				return deleted, err
			}
			deleted++
		}
	}
	return deleted, nil
}

// stubServer is a loopback HTTP server that answers GetItem, PutItem and
// DeleteItem with canned DynamoDB responses, so a benchmark measures the
// client side alone: the SDK, and the store on top of it.
func stubServer(b *testing.B, data []byte, expiry time.Time) string {
	item, _ := json.Marshal(map[string]any{"Item": map[string]any{
		"session_key": map[string]string{"S": "token"},
		"data":        map[string][]byte{"B": data},
		"expires":     map[string]string{"N": strconv.FormatInt(expiry.Unix(), 10)},
	}})
	empty := []byte("{}")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		body := empty
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".GetItem") {
			body = item
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// stubStore returns a store and a raw client, both on the stub server.
func stubStore(b *testing.B, optFns ...func(*Options)) (*DynamoStore, *dynamodb.Client) {
	data := bytes.Repeat([]byte{'d'}, 1024)
	url := stubServer(b, data, time.Now().Add(time.Hour))
	tr := &http.Transport{}
	b.Cleanup(tr.CloseIdleConnections)
	client := dynamodb.New(ddblocal.NewClient(url).Options(), func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: tr}
	})
	return NewWithCleanupInterval(client, 0, append([]func(*Options){func(o *Options) { o.TableName = "stub" }}, optFns...)...), client
}

func BenchmarkStubFind(b *testing.B) {
	raw, store := findPair(stubStore(b))
	benchPair(b, raw, store)
}

func BenchmarkStubCommit(b *testing.B) {
	raw, store := commitPair(stubStore(b))
	benchPair(b, raw, store)
}

func BenchmarkStubDelete(b *testing.B) {
	s, client := stubStore(b)
	benchDelete(b, s, client)
}

// BenchmarkDelete deletes an absent item, which DynamoDB bills and serves
// like a present one, so every iteration is the same request.
func BenchmarkDelete(b *testing.B) {
	s, client := benchStore(b)
	benchDelete(b, s, client)
}

// benchDelete compares Delete with the raw request that does the same: a
// PutItem of a revocation, as a hand-written store with the same promise
// would send.
func benchDelete(b *testing.B, s *DynamoStore, client *dynamodb.Client) {
	ctx := context.Background()
	benchPair(b, func() error {
		until := time.Now().Add(sessionitem.DefaultRevocationPeriod)
		_, err := client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: s.table,
			Item: map[string]types.AttributeValue{
				"session_key":                &types.AttributeValueMemberS{Value: "token"},
				"expires":                    &types.AttributeValueMemberN{Value: strconv.FormatInt(until.Unix()+1, 10)},
				sessionitem.RevokedAttribute: &types.AttributeValueMemberN{Value: strconv.FormatInt(until.UnixMilli(), 10)},
			},
		})
		return err
	}, func() error {
		return s.DeleteCtx(ctx, "token")
	})
}

// BenchmarkThroughput runs Find and raw GetItem from 64 goroutines against
// DynamoDB Local, each goroutine alternating the two, with the SDK's default
// HTTP client (10 idle connections per host) and with the tuned one the
// README recommends. It reports each side's latency under that load, the
// calls per second of both together, and new connections per thousand calls.
func BenchmarkThroughput(b *testing.B) {
	fns := newTable(b)
	seed := NewWithCleanupInterval(newClient(b), 0, fns...)
	if err := seed.Commit("token", bytes.Repeat([]byte{'d'}, 1024), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	for _, cfg := range []struct {
		name  string
		tuned bool
	}{{"sdk-default", false}, {"tuned", true}} {
		b.Run(cfg.name, func(b *testing.B) {
			var dials atomic.Int64
			var built atomic.Pointer[http.Transport]
			hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
				built.Store(tr)
				if cfg.tuned {
					tuneTransport(tr)
				}
				dial := tr.DialContext
				tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials.Add(1)
					return dial(ctx, network, addr)
				}
			})
			b.Cleanup(func() {
				if tr := built.Load(); tr != nil {
					tr.CloseIdleConnections()
				}
			})
			client := dynamodb.New(ddblocal.NewClient(endpoint).Options(), func(o *dynamodb.Options) { o.HTTPClient = hc })
			s := NewWithCleanupInterval(client, 0, fns...)
			raw, store := findPair(s, client)
			var rawNs, storeNs, calls atomic.Int64
			timed := func(f func() error, total *atomic.Int64) error {
				start := time.Now()
				err := f()
				total.Add(int64(time.Since(start)))
				calls.Add(1)
				return err
			}
			b.SetParallelism(64 / runtime.GOMAXPROCS(0))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for n := 0; pb.Next(); n++ {
					first, second := func() error { return timed(raw, &rawNs) }, func() error { return timed(store, &storeNs) }
					if n%2 == 1 {
						first, second = second, first
					}
					if err := first(); err != nil {
						b.Error(err)
						return
					}
					if err := second(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			elapsed := time.Since(start)
			b.ReportMetric(float64(calls.Load())/elapsed.Seconds(), "calls/s")
			b.ReportMetric(float64(rawNs.Load())/float64(b.N), "raw-ns/call")
			b.ReportMetric(float64(storeNs.Load())/float64(b.N), "store-ns/call")
			b.ReportMetric(float64(storeNs.Load())/float64(rawNs.Load()), "store/raw")
			b.ReportMetric(float64(dials.Load())*1000/float64(calls.Load()), "dials/kcall")
		})
	}
}

// tuneTransport is the README's HTTP set-up for many concurrent requests:
// keep as many idle connections per host as there are requests in flight.
func tuneTransport(tr *http.Transport) {
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 256
}

// capacityClient asks DynamoDB for the capacity each PutItem and GetItem
// consumes and keeps the last figures.
type capacityClient struct {
	Client
	wcu, rcu atomic.Value // float64
}

func (c *capacityClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.PutItem(ctx, in, optFns...)
	if err == nil && out.ConsumedCapacity != nil {
		c.wcu.Store(aws.ToFloat64(out.ConsumedCapacity.CapacityUnits))
	}
	return out, err
}

func (c *capacityClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.GetItem(ctx, in, optFns...)
	if err == nil && out.ConsumedCapacity != nil {
		c.rcu.Store(aws.ToFloat64(out.ConsumedCapacity.CapacityUnits))
	}
	return out, err
}

// BenchmarkCompression commits and finds realistic scs gob sessions of 1, 4
// and 32 KB with and without CompressAbove, reporting the item's size and
// the write and strongly consistent read units DynamoDB Local charged.
func BenchmarkCompression(b *testing.B) {
	fns := newTable(b)
	for _, size := range []int{1024, 4096, 32768} {
		data := gobSession(b, size, uint64(size))
		for _, compress := range []int{0, 1024} {
			name := fmt.Sprintf("%dKB/plain", size/1024)
			if compress > 0 {
				name = fmt.Sprintf("%dKB/zstd", size/1024)
			}
			b.Run(name, func(b *testing.B) {
				client := &capacityClient{Client: newClient(b)}
				s := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.CompressAbove = compress })...)
				expiry := time.Now().Add(time.Hour)
				for b.Loop() {
					if err := s.Commit("token", data, expiry); err != nil {
						b.Fatal(err)
					}
					if _, found, err := s.Find("token"); err != nil || !found {
						b.Fatal(err)
					}
				}
				size := 0
				for name, v := range rawItem(b, s, "token") {
					size += len(name)
					switch v := v.(type) {
					case *types.AttributeValueMemberS:
						size += len(v.Value)
					case *types.AttributeValueMemberB:
						size += len(v.Value)
					case *types.AttributeValueMemberN:
						size += numberSize(v.Value)
					}
				}
				b.ReportMetric(float64(len(data)), "data-bytes")
				b.ReportMetric(float64(size), "item-bytes")
				b.ReportMetric(client.wcu.Load().(float64), "WCU/commit")
				b.ReportMetric(client.rcu.Load().(float64), "RCU/find")
			})
		}
	}
}

// BenchmarkCodec compresses and decompresses realistic scs sessions as
// Commit and Find do with CompressAbove set.
func BenchmarkCodec(b *testing.B) {
	for _, size := range []int{1024, 4096, 32768} {
		data := gobSession(b, size, uint64(size))
		z := compress(data)
		b.Run(fmt.Sprintf("%dKB/compress", size/1024), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				compress(data)
			}
		})
		b.Run(fmt.Sprintf("%dKB/decompress", size/1024), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decompress(z); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchStore(b *testing.B) (*DynamoStore, *dynamodb.Client) {
	fns := newTable(b)
	client := newClient(b)
	return NewWithCleanupInterval(client, 0, fns...), client
}

// benchPair runs raw and store alternately, swapping their order each
// iteration, after a warm-up that lets DynamoDB Local's JIT settle.
func benchPair(b *testing.B, raw, store func() error) {
	for range 300 {
		if err := raw(); err != nil {
			b.Fatal(err)
		}
		if err := store(); err != nil {
			b.Fatal(err)
		}
	}
	var rawTime, storeTime time.Duration
	timed := func(f func() error, total *time.Duration) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		*total += time.Since(start)
	}
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			timed(raw, &rawTime)
			timed(store, &storeTime)
		} else {
			timed(store, &storeTime)
			timed(raw, &rawTime)
		}
		n++
	}
	b.StopTimer()
	b.ReportMetric(float64(rawTime.Nanoseconds())/float64(n), "raw-ns/call")
	b.ReportMetric(float64(storeTime.Nanoseconds())/float64(n), "store-ns/call")
	b.ReportMetric(float64(storeTime)/float64(rawTime), "store/raw")
	allocs := func(f func() error) float64 { return testing.AllocsPerRun(50, func() { f() }) }
	b.ReportMetric(allocs(raw), "raw-allocs/call")
	b.ReportMetric(allocs(store), "store-allocs/call")
}

func BenchmarkFind(b *testing.B) {
	s, client := benchStore(b)
	if err := s.Commit("token", bytes.Repeat([]byte{'d'}, 1024), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	raw, store := findPair(s, client)
	benchPair(b, raw, store)
}

func BenchmarkCommit(b *testing.B) {
	s, client := benchStore(b)
	raw, store := commitPair(s, client)
	benchPair(b, raw, store)
}

// findPair returns a raw consistent GetItem of the item "token" and the
// store's Find of it, which must find it.
func findPair(s *DynamoStore, client *dynamodb.Client) (raw, store func() error) {
	ctx := context.Background()
	return func() error {
			_, err := client.GetItem(ctx, &dynamodb.GetItemInput{
				TableName:      s.table,
				Key:            map[string]types.AttributeValue{"session_key": &types.AttributeValueMemberS{Value: "token"}},
				ConsistentRead: aws.Bool(true),
			})
			return err
		}, func() error {
			_, found, err := s.FindCtx(ctx, "token")
			if err == nil && !found {
				err = errors.New("not found")
			}
			return err
		}
}

// commitPair returns a raw PutItem of 1 KB under "token", with the
// attributes the store writes and its condition that the token is not
// revoked (the request a hand-written store with the same promise sends),
// and the store's Commit of the same.
func commitPair(s *DynamoStore, client *dynamodb.Client) (raw, store func() error) {
	data := bytes.Repeat([]byte{'d'}, 1024)
	expiry := time.Now().Add(time.Hour)
	ctx := context.Background()
	return func() error {
			_, err := client.PutItem(ctx, rawPut(s, data, expiry, true))
			return err
		}, func() error {
			return s.CommitCtx(ctx, "token", data, expiry)
		}
}

// rawPut returns the PutItem of a Commit of data under "token", with the
// condition that the token is not revoked when conditional.
func rawPut(s *DynamoStore, data []byte, expiry time.Time, conditional bool) *dynamodb.PutItemInput {
	in := &dynamodb.PutItemInput{
		TableName: s.table,
		Item: map[string]types.AttributeValue{
			"session_key": &types.AttributeValueMemberS{Value: "token"},
			"data":        &types.AttributeValueMemberB{Value: data},
			"expires":     &types.AttributeValueMemberN{Value: strconv.FormatInt(expiry.Unix()+1, 10)},
			"expires_ms":  &types.AttributeValueMemberN{Value: strconv.FormatInt(expiry.UnixMilli(), 10)},
		},
	}
	if conditional {
		in.ConditionExpression = aws.String("attribute_not_exists(#r) OR #r < :now")
		in.ExpressionAttributeNames = map[string]string{"#r": sessionitem.RevokedAttribute}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().UnixMilli(), 10)},
		}
	}
	return in
}

// BenchmarkCommitCondition measures what the revocation's condition costs
// on DynamoDB Local: an unconditional raw PutItem (raw) beside the same
// with the condition (store). On DynamoDB a condition is billed nothing.
func BenchmarkCommitCondition(b *testing.B) {
	s, client := benchStore(b)
	data := bytes.Repeat([]byte{'d'}, 1024)
	expiry := time.Now().Add(time.Hour)
	ctx := context.Background()
	benchPair(b, func() error {
		_, err := client.PutItem(ctx, rawPut(s, data, expiry, false))
		return err
	}, func() error {
		_, err := client.PutItem(ctx, rawPut(s, data, expiry, true))
		return err
	})
}

// BenchmarkOwner measures what Options.Owner made by SessionValue adds to a
// Commit, a decode of the session data, beside what scs spends on every
// Commit anyway, the encode.
func BenchmarkOwner(b *testing.B) {
	for _, size := range []int{1024, 4096} {
		data := gobSession(b, size, uint64(size))
		deadline, values, err := scs.GobCodec{}.Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dKB/scs-encode", size/1024), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := (scs.GobCodec{}).Encode(deadline, values); err != nil {
					b.Fatal(err)
				}
			}
		})
		owner := SessionValue(scs.GobCodec{}, "user_id")
		b.Run(fmt.Sprintf("%dKB/session-value", size/1024), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := owner(data); !ok {
					b.Fatal("no owner")
				}
			}
		})
	}
}

// BenchmarkSealedFind and BenchmarkSealedCommit run a store with
// Encryption (the standard library's AES-256-GCM) beside the same store
// without, on 1 KB of data: "raw" is the plain store here, so store/raw is
// sealed/plain.
func BenchmarkSealedFind(b *testing.B) {
	plain, sealed := sealedPair(b)
	data := bytes.Repeat([]byte{'d'}, 1024)
	ctx := context.Background()
	find := func(s *DynamoStore, token string) func() error {
		return func() error {
			_, found, err := s.FindCtx(ctx, token)
			if err == nil && !found {
				err = errors.New("not found")
			}
			return err
		}
	}
	for token, s := range map[string]*DynamoStore{"plain": plain, "sealed": sealed} {
		if err := s.Commit(token, data, time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	benchPair(b, find(plain, "plain"), find(sealed, "sealed"))
}

func BenchmarkSealedCommit(b *testing.B) {
	plain, sealed := sealedPair(b)
	data := bytes.Repeat([]byte{'d'}, 1024)
	expiry := time.Now().Add(time.Hour)
	ctx := context.Background()
	benchPair(b,
		func() error { return plain.CommitCtx(ctx, "plain", data, expiry) },
		func() error { return sealed.CommitCtx(ctx, "sealed", data, expiry) })
}

// sealedPair returns two stores on one new table, without and with
// Encryption.
func sealedPair(b *testing.B) (plain, sealed *DynamoStore) {
	fns := newTable(b)
	client := newClient(b)
	return NewWithCleanupInterval(client, 0, fns...),
		NewWithCleanupInterval(client, 0, append(fns, withEncryption(newAEAD(b)))...)
}

// BenchmarkSeal measures the AEAD alone, as the store calls it: the
// standard library's AES-256-GCM sealing and opening session data.
func BenchmarkSeal(b *testing.B) {
	a := newAEAD(b)
	ad := associatedData("a-session-key-of-43-bytes-like-an-scs-token", false)
	for _, size := range []int{1024, 4096, 32768} {
		data := gobSession(b, size, uint64(size))
		sealed, err := a.Encrypt(data, ad)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dKB/encrypt", size/1024), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Encrypt(data, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%dKB/decrypt", size/1024), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Decrypt(sealed, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// meteredProvider returns the OpenTelemetry SDK's MeterProvider with a
// ManualReader, which keeps every data point in memory until collected.
func meteredProvider(b *testing.B) func(*Options) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { mp.Shutdown(context.Background()) })
	return func(o *Options) { o.MeterProvider = mp }
}

// BenchmarkMeteredFind and BenchmarkMeteredCommit run a store whose
// MeterProvider is the SDK's, so that every call records its count,
// duration and consumed capacity (which the store then asks DynamoDB
// for), beside the raw call, on DynamoDB Local.
func BenchmarkMeteredFind(b *testing.B) {
	fns := newTable(b, meteredProvider(b))
	client := newClient(b)
	s := NewWithCleanupInterval(client, 0, fns...)
	if err := s.Commit("token", bytes.Repeat([]byte{'d'}, 1024), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	raw, store := findPair(s, client)
	benchPair(b, raw, store)
}

func BenchmarkMeteredCommit(b *testing.B) {
	fns := newTable(b, meteredProvider(b))
	client := newClient(b)
	raw, store := commitPair(NewWithCleanupInterval(client, 0, fns...), client)
	benchPair(b, raw, store)
}

// BenchmarkStubMeteredFind and BenchmarkStubMeteredCommit are the same on
// the stub server: the client-side cost of recording.
func BenchmarkStubMeteredFind(b *testing.B) {
	raw, store := findPair(stubStore(b, meteredProvider(b)))
	benchPair(b, raw, store)
}

func BenchmarkStubMeteredCommit(b *testing.B) {
	raw, store := commitPair(stubStore(b, meteredProvider(b)))
	benchPair(b, raw, store)
}
