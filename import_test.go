package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// gobData returns session data as scs's GobCodec encodes it, with deadline
// and the one value v.
func gobData(tb testing.TB, deadline time.Time, v string) []byte {
	tb.Helper()
	b, err := scs.GobCodec{}.Encode(deadline, map[string]any{"v": v})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// memFrom returns an scs memstore, with no cleanup goroutine, holding
// sessions, each with memstore's expiry liveAt(): what the store imports
// from goes by the deadline in the data, not by the old store's expiry.
func memFrom(tb testing.TB, sessions map[string][]byte) *memstore.MemStore {
	tb.Helper()
	m := memstore.NewWithCleanupInterval(0)
	for token, data := range sessions {
		if err := m.Commit(token, data, liveAt()); err != nil {
			tb.Fatal(err)
		}
	}
	return m
}

// TestImport imports 2,000 sessions from an scs memstore into a table that
// already holds some of their tokens: sessions committed there since (kept,
// with their newer data), revoked there (not brought back) and expired
// there (replaced); of the old store's, the expired ones by their data's
// deadline and those the codec cannot decode stay out. The counts are
// exact, and a second run writes nothing.
func TestImport(t *testing.T) {
	t.Parallel()
	s := newStoreWith(t, nil, clockAhead)
	ctx := context.Background()
	kinds := []struct {
		name string
		n    int
	}{{"live", 1480}, {"replaced", 20}, {"present", 200}, {"revoked", 100}, {"expired", 150}, {"undecodable", 50}}
	sessions := map[string][]byte{}
	deadlines := map[string]time.Time{}
	want := map[string][]byte{} // what the table serves afterwards
	for _, k := range kinds {
		for i := range k.n {
			token := fmt.Sprintf("%s%04d", k.name, i)
			deadline := liveAt()
			switch k.name {
			case "expired":
				deadline = expiredAt() // past by the store's clock
			case "undecodable":
				sessions[token] = []byte("not gob " + token)
				continue
			}
			sessions[token] = gobData(t, deadline, token)
			deadlines[token] = deadline
			switch k.name {
			case "live", "replaced":
				want[token] = sessions[token]
			case "present":
				want[token] = []byte("newer " + token)
			}
		}
	}
	from := memFrom(t, sessions)
	for token, data := range want {
		if strings.HasPrefix(token, "present") {
			if err := s.Commit(token, data, liveAt()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 20 {
		if err := s.Commit(fmt.Sprintf("replaced%04d", i), []byte("old"), expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if err := s.Delete(fmt.Sprintf("revoked%04d", i)); err != nil {
			t.Fatal(err)
		}
	}

	// The callback appends without a lock: the race detector checks that
	// calls are never concurrent.
	var calls []ImportProgress
	n, err := s.Import(ctx, from, scs.GobCodec{}, func(o *ImportOptions) {
		o.Progress = func(p ImportProgress) { calls = append(calls, p) }
	})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := ImportProgress{Total: 2000, Read: 2000, Written: 1500, Expired: 150, Present: 300, Undecodable: 50}
	if n != 1500 || len(calls) == 0 || calls[len(calls)-1] != wantCounts {
		t.Fatalf("got %d written, last progress %+v: expected 1500, %+v", n, calls[len(calls)-1], wantCounts)
	}
	// A call each 100 sessions done, then the final one.
	if len(calls) < 2000/importProgressEvery+1 {
		t.Fatalf("got %d progress calls: expected at least %d", len(calls), 2000/importProgressEvery+1)
	}
	for i := 1; i < len(calls); i++ {
		if p, q := calls[i-1], calls[i]; q.Read < p.Read || q.done() < p.done() || q.Written < p.Written {
			t.Fatalf("progress went back: %+v, then %+v", p, q)
		}
	}

	got, err := s.AllCtx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("got %d sessions in the table: expected %d, the imported ones with their data and the present ones with their newer data", len(got), len(want))
	}
	// Each with its deadline, to the millisecond.
	for _, token := range []string{"live0000", "live1479", "replaced0007"} {
		_, expiry, found, err := s.FindExpiryCtx(ctx, token)
		if wantExpiry := time.UnixMilli(deadlines[token].UnixMilli()); err != nil || !found || !expiry.Equal(wantExpiry) {
			t.Fatalf("%s: got expiry %v, %v, %v: expected %v", token, expiry, found, err, wantExpiry)
		}
	}
	// The revocations stand; nothing was written for the skipped.
	if item := rawItem(t, s, "revoked0042"); !sessionitem.Revoked(item) {
		t.Fatalf("got %v: expected the revocation", item)
	}
	for _, token := range []string{"expired0003", "undecodable0004"} {
		if item := rawItem(t, s, token); item != nil {
			t.Fatalf("%s: got %v: expected no item", token, item)
		}
	}

	var last ImportProgress
	n, err = s.Import(ctx, from, scs.GobCodec{}, func(o *ImportOptions) {
		o.Progress = func(p ImportProgress) { last = p }
	})
	wantCounts = ImportProgress{Total: 2000, Read: 2000, Expired: 150, Present: 1800, Undecodable: 50}
	if err != nil || n != 0 || last != wantCounts {
		t.Fatalf("second run: got %d, %v, %+v: expected 0 written, %+v", n, err, last, wantCounts)
	}
	again, err := s.AllCtx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(again, want, bytes.Equal) {
		t.Fatalf("second run: got %d sessions in the table: expected the same %d", len(again), len(want))
	}
}

// TestImportWriteRate: with WriteRate, the import takes at least the time
// the cap implies for the write units DynamoDB reported, less one second's
// burst. Only that lower bound is asserted: a slow machine may take longer.
func TestImportWriteRate(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	s := newStore(t, nil, func(o *Options) { o.MeterProvider = mp })
	sessions := map[string][]byte{}
	estimate := 0
	for i := range 100 {
		token := fmt.Sprintf("rate%03d", i)
		sessions[token] = gobSession(t, 1500, uint64(i)) // 2 write units each
		deadline, _, err := scs.GobCodec{}.Decode(sessions[token])
		if err != nil {
			t.Fatal(err)
		}
		estimate += s.importUnits(importSession{token, sessions[token], deadline})
	}
	from := memFrom(t, sessions)
	const writeRate = 50.0
	start := time.Now()
	n, err := s.Import(context.Background(), from, scs.GobCodec{}, func(o *ImportOptions) { o.WriteRate = writeRate })
	elapsed := time.Since(start)
	if n != 100 || err != nil {
		t.Fatalf("got %d, %v: expected 100 written", n, err)
	}
	units := 0.0
	metrics := collect(t, reader)
	for k, v := range metrics {
		if strings.HasPrefix(k, "dynamostore.capacity{") && strings.Contains(k, "kind=write") && strings.Contains(k, "operation=commit_new") {
			units += v
		}
	}
	if k := "dynamostore.operations{operation=import,outcome=ok,table=" + s.tableName + "}"; metrics[k] != 1 {
		t.Fatalf("got %v for %s: expected 1", metrics[k], k)
	}
	if units != float64(estimate) || units < 200 {
		t.Fatalf("DynamoDB reported %v write units: expected the %d Import waited for, at least 200", units, estimate)
	}
	burst := writeRate // one second's worth
	// Less a millisecond for the limiter's rounding of durations.
	if least := time.Duration((units-burst)/writeRate*float64(time.Second)) - time.Millisecond; elapsed < least {
		t.Fatalf("%v write units at %v a second took %v: expected at least %v", units, writeRate, elapsed, least)
	}
	t.Logf("%v write units at a cap of %v a second took %v", units, writeRate, elapsed)
}

// TestImportCancel: a context cancelled midway, here from the Progress
// callback once 400 sessions are written, stops the import with the
// sessions written so far, all readable, and an error wrapping
// context.Canceled; a second run imports the rest.
func TestImportCancel(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	const total = 1200
	sessions := map[string][]byte{}
	for i := range total {
		token := fmt.Sprintf("cancel%04d", i)
		sessions[token] = gobData(t, time.Now().Add(time.Hour), token)
	}
	from := memFrom(t, sessions)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last ImportProgress
	cancelledAt := -1 // sessions written when it was cancelled
	n, err := s.Import(ctx, from, scs.GobCodec{}, func(o *ImportOptions) {
		o.Progress = func(p ImportProgress) {
			last = p
			if p.Written >= 400 && cancelledAt < 0 {
				cancelledAt = p.Written
				cancel()
			}
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v: expected an error wrapping context.Canceled", err)
	}
	// At the most, the writes in flight when it was cancelled finish.
	if n < cancelledAt || n > cancelledAt+sweepWorkers || last.Written != n {
		t.Fatalf("got %d written, last progress %+v: expected %d to %d, as the progress says", n, last, cancelledAt, cancelledAt+sweepWorkers)
	}
	got, err := s.AllCtx(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d sessions in the table: expected the %d Import counted", len(got), n)
	}
	for token, data := range got {
		if !bytes.Equal(data, sessions[token]) {
			t.Fatalf("%s: got data that is not the imported session's", token)
		}
	}

	rest, err := s.Import(context.Background(), from, scs.GobCodec{})
	if rest != total-n || err != nil {
		t.Fatalf("second run: got %d, %v: expected the other %d", rest, err, total-n)
	}
}

// TestImportIdleTimeout: with IdleTimeout, a session expires at the earlier
// of its deadline and IdleTimeout after its import.
func TestImportIdleTimeout(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	ctx := context.Background()
	const idle = 30 * time.Minute
	soon := time.Now().Add(10 * time.Minute)
	from := memFrom(t, map[string][]byte{
		"long": gobData(t, time.Now().Add(3*time.Hour), "long"),
		"soon": gobData(t, soon, "soon"),
	})
	before := time.Now()
	if n, err := s.Import(ctx, from, scs.GobCodec{}, func(o *ImportOptions) { o.IdleTimeout = idle }); n != 2 || err != nil {
		t.Fatalf("got %d, %v: expected 2 written", n, err)
	}
	after := time.Now()
	_, expiry, found, err := s.FindExpiryCtx(ctx, "long")
	if err != nil || !found || expiry.Before(before.Add(idle).Truncate(time.Millisecond)) || expiry.After(after.Add(idle)) {
		t.Fatalf("long: got %v, %v, %v: expected IdleTimeout after the import, between %v and %v", expiry, found, err, before.Add(idle), after.Add(idle))
	}
	_, expiry, found, err = s.FindExpiryCtx(ctx, "soon")
	if want := time.UnixMilli(soon.UnixMilli()); err != nil || !found || !expiry.Equal(want) {
		t.Fatalf("soon: got %v, %v, %v: expected its deadline %v", expiry, found, err, want)
	}
}

// holdClient holds the nth PutItem until release is closed, having closed
// held, then sends it with its own context.
type holdClient struct {
	Client
	n             int64
	puts          atomic.Int64
	held, release chan struct{}
}

func (c *holdClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if c.puts.Add(1) == c.n {
		close(c.held)
		<-c.release
	}
	return c.Client.PutItem(ctx, in, optFns...)
}

// TestImportCancelInFlight: a write sent before the context ends is let
// finish, and counted: the count is what the table holds.
func TestImportCancelInFlight(t *testing.T) {
	t.Parallel()
	client := &holdClient{Client: newClient(t), n: 3, held: make(chan struct{}), release: make(chan struct{})}
	s := newStore(t, client)
	sessions := map[string][]byte{}
	for i := range 10 {
		token := fmt.Sprintf("inflight%02d", i)
		sessions[token] = gobData(t, time.Now().Add(time.Hour), token)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		n   int
		err error
	}
	done := make(chan result)
	go func() {
		n, err := s.Import(ctx, memFrom(t, sessions), scs.GobCodec{}, func(o *ImportOptions) { o.Workers = 1 })
		done <- result{n, err}
	}()
	waitChan(t, client.held, "the third write")
	cancel()
	close(client.release)
	r := waitChan(t, done, "Import to return")
	if r.n != 3 || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %d, %v: expected 3 written and context.Canceled", r.n, r.err)
	}
	if got, err := s.AllCtx(context.Background()); err != nil || len(got) != 3 {
		t.Fatalf("got %d sessions, %v: expected the 3 counted", len(got), err)
	}
}

// ctxOnlyStore is an scs memstore whose All panics, as goredisstore's plain
// methods do: only AllCtx may be called.
type ctxOnlyStore struct {
	*memstore.MemStore
	calls int
}

func (c *ctxOnlyStore) All() (map[string][]byte, error) { panic("missing context arg") }

func (c *ctxOnlyStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	c.calls++
	return c.MemStore.All()
}

// brokenSource is an old store whose All fails.
type brokenSource struct{}

var errSourceDown = errors.New("source store down")

func (brokenSource) All() (map[string][]byte, error) { return nil, errSourceDown }

// TestImportSources: Import reads with AllCtx where the store has it;
// skips and counts tokens the table cannot hold and sessions too large for
// an item, logging none of them; returns the old store's error; and
// refuses a nil store or codec.
func TestImportSources(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	s := newStore(t, nil, withLogger(&log))
	ctx := context.Background()
	deadline := time.Now().Add(time.Hour)
	huge, err := scs.GobCodec{}.Encode(deadline, map[string]any{"v": strings.Repeat("x", maxItemBytes)})
	if err != nil {
		t.Fatal(err)
	}
	sessions := map[string][]byte{
		"ok0":            gobData(t, deadline, "ok0"),
		"ok1":            gobData(t, deadline, "ok1"),
		"not a token!":   gobData(t, deadline, "bad token"),
		"huge":           huge,
		"undecodable123": []byte("garbage-data-77"),
	}
	from := &ctxOnlyStore{MemStore: memFrom(t, sessions)}
	var last ImportProgress
	n, err := s.Import(ctx, from, scs.GobCodec{}, func(o *ImportOptions) {
		o.Workers = 1
		o.Progress = func(p ImportProgress) { last = p }
	})
	want := ImportProgress{Total: 5, Read: 5, Written: 2, Unstorable: 2, Undecodable: 1}
	if n != 2 || err != nil || last != want || from.calls != 1 {
		t.Fatalf("got %d, %v, %+v, %d AllCtx calls: expected 2 written, %+v, one AllCtx call", n, err, last, from.calls, want)
	}
	mustFind(t, s, "ok1", string(sessions["ok1"]))
	for _, secret := range []string{"not a token!", "huge", "undecodable123", "garbage-data-77", "ok0"} {
		if strings.Contains(log.String(), secret) {
			t.Fatalf("the log holds %q: %s", secret, log.String())
		}
	}

	if n, err := s.Import(ctx, brokenSource{}, scs.GobCodec{}); n != 0 || !errors.Is(err, errSourceDown) {
		t.Fatalf("got %d, %v: expected 0 and the source's error", n, err)
	}
	if _, err := s.Import(ctx, nil, scs.GobCodec{}); err == nil {
		t.Fatal("got no error for a nil store")
	}
	if _, err := s.Import(ctx, from, nil); err == nil {
		t.Fatal("got no error for a nil codec")
	}
}

// BenchmarkImport imports b.N sessions of about 1 KB, as scs's GobCodec
// encodes a typical web application's, from an scs memstore into an empty
// table, with no write cap, through the HTTP client the README recommends
// for many requests in flight, and reports sessions and write units a
// second. Each op is one session.
func BenchmarkImport(b *testing.B) {
	for _, workers := range []int{8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var built atomic.Pointer[http.Transport]
			hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
				built.Store(tr)
				tuneTransport(tr)
			})
			b.Cleanup(func() {
				if tr := built.Load(); tr != nil {
					tr.CloseIdleConnections()
				}
			})
			client := dynamodb.New(ddblocal.NewClient(endpoint).Options(), func(o *dynamodb.Options) { o.HTTPClient = hc })
			s := NewWithCleanupInterval(client, 0, newTable(b)...)
			variants := make([][]byte, 64)
			for i := range variants {
				variants[i] = gobSession(b, 1000, uint64(i))
			}
			sessions := make(map[string][]byte, b.N)
			units := 0
			for i := range b.N {
				token := fmt.Sprintf("bench%08d", i)
				sessions[token] = variants[i%len(variants)]
				units += s.importUnits(importSession{token, sessions[token], time.Now().Add(time.Hour)})
			}
			from := memstore.NewWithCleanupInterval(0)
			for token, data := range sessions {
				from.Commit(token, data, time.Now().Add(time.Hour))
			}
			b.ResetTimer()
			start := time.Now()
			n, err := s.Import(context.Background(), from, scs.GobCodec{}, func(o *ImportOptions) { o.Workers = workers })
			elapsed := time.Since(start)
			b.StopTimer()
			if n != b.N || err != nil {
				b.Fatalf("got %d, %v: expected %d written", n, err, b.N)
			}
			b.ReportMetric(float64(n)/elapsed.Seconds(), "sessions/s")
			b.ReportMetric(float64(units)/elapsed.Seconds(), "wcu/s")
		})
	}
}
