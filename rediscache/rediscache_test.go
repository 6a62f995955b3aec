package rediscache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/redis/go-redis/v9"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/linearize"
)

var endpoint string

func TestMain(m *testing.M) {
	os.Exit(ddblocal.Run(m, &endpoint))
}

const hangTimeout = 2 * time.Minute

func newClient(tb testing.TB) *dynamodb.Client {
	tr := &http.Transport{}
	tb.Cleanup(tr.CloseIdleConnections)
	return dynamodb.New(ddblocal.NewClient(endpoint).Options(), func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: tr, Timeout: ddblocal.RequestTimeout}
	})
}

var tableSeq atomic.Int64

// newTable creates a table of the test's own and returns the option that
// names it.
func newTable(tb testing.TB) func(*dynamostore.Options) {
	tb.Helper()
	name := fmt.Sprintf("r%d-%d-%s", os.Getpid(), tableSeq.Add(1), regexp.MustCompile(`[^a-zA-Z0-9_.-]`).ReplaceAllString(tb.Name(), "_"))
	name = name[:min(len(name), 200)]
	named := func(o *dynamostore.Options) { o.TableName = name }
	client := newClient(tb)
	ddblocal.Setup(tb, "CreateTable "+name, func(ctx context.Context) error {
		return dynamostore.CreateTable(ctx, client, named)
	})
	tb.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return named
}

// keyOf returns the Redis key of token's copy, for a CachedStore in front of
// a DynamoStore on table with no KeyPrefix: the table and the prefix come
// before the token.
func keyOf(table func(*dynamostore.Options), token string) string {
	var o dynamostore.Options
	table(&o)
	return DefaultKeyPrefix + o.TableName + "/" + token
}

// newStore returns a DynamoStore without a sweeper on the table.
func newStore(tb testing.TB, client dynamostore.Client, table func(*dynamostore.Options), optFns ...func(*dynamostore.Options)) *dynamostore.DynamoStore {
	return dynamostore.NewWithCleanupInterval(client, 0, append([]func(*dynamostore.Options){table}, optFns...)...)
}

// newRedis starts a redis-server for the test's lifetime and returns a
// client of it.
func newRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	client := redis.NewClient(&redis.Options{Addr: ddblocal.StartRedis(tb)})
	tb.Cleanup(func() { client.Close() })
	return client
}

func mustFind(t *testing.T, s scs.Store, token, want string) {
	t.Helper()
	b, found, err := s.Find(token)
	if err != nil || found != (want != "") || string(b) != want {
		t.Fatalf("got %q, %v, %v for %s: expected %q", b, found, err, token, want)
	}
}

// TestShared: two instances share one Redis; what one writes the other
// reads from the cache, and what one deletes neither serves.
func TestShared(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	table := newTable(t)
	s := newStore(t, newClient(t), table)
	a := dynamostore.NewCached(s, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb) })
	b := dynamostore.NewCached(s, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb) })
	if err := a.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, b, "token", "data")
	if st := b.Stats(); st.Hits != 1 {
		t.Fatalf("got %+v: expected b to hit the copy a's Commit left", st)
	}
	if err := b.Delete("token"); err != nil {
		t.Fatal(err)
	}
	mustFind(t, a, "token", "")
	if n, err := rdb.Exists(context.Background(), keyOf(table, "token")).Result(); err != nil || n != 0 {
		t.Fatalf("got %d, %v: expected nothing left in Redis", n, err)
	}

	// A past expiry leaves nothing in Redis.
	if err := a.Commit("old", []byte("data"), time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(context.Background(), keyOf(table, "old")).Result(); n != 0 {
		t.Fatal("expected no Redis key for an expired session")
	}
	// A copy lives at most MaxStale, and no longer than the session.
	if err := a.Commit("ttl", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.PTTL(context.Background(), keyOf(table, "ttl")).Result(); err != nil || ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("got TTL %v, %v: expected at most MaxStale, 10s", ttl, err)
	}
	if err := a.Commit("short", []byte("data"), time.Now().Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.PTTL(context.Background(), keyOf(table, "short")).Result(); err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("got TTL %v, %v: expected at most the session's 2s", ttl, err)
	}
}

// heldGet holds its first GetItem, once DynamoDB has answered, until
// release is closed, after closing reached.
type heldGet struct {
	dynamostore.Client
	once             sync.Once
	reached, release chan struct{}
}

func (c *heldGet) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := c.Client.GetItem(ctx, in, optFns...)
	c.once.Do(func() {
		close(c.reached)
		<-c.release
	})
	return out, err
}

// TestStaleFillRefused: instance A's miss reads the session; instance B
// deletes it while A's read is held; A's fill is then refused, so no
// instance serves the deleted session.
func TestStaleFillRefused(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	table := newTable(t)
	held := &heldGet{Client: newClient(t), reached: make(chan struct{}), release: make(chan struct{})}
	sa, sb := newStore(t, held, table), newStore(t, newClient(t), table)
	if err := sb.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	a := dynamostore.NewCached(sa, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb) })
	b := dynamostore.NewCached(sb, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb) })
	done := make(chan struct{})
	go func() { a.Find("token"); close(done) }()
	select {
	case <-held.reached:
	case <-time.After(hangTimeout):
		t.Fatal("the miss never read")
	}
	if err := b.Delete("token"); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	<-done
	if n, err := rdb.HExists(context.Background(), keyOf(table, "token"), "d").Result(); err != nil || n {
		t.Fatalf("got %v, %v: expected no copy in Redis", n, err)
	}
	mustFind(t, a, "token", "")
	mustFind(t, b, "token", "")
	// And a Commit through A of what it read stores nothing.
	if err := a.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, b, "token", "")
}

// TestRedisDown: a write that Redis cannot be told of is refused, and a
// Find reads the backing store.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	table := newTable(t)
	s := newStore(t, newClient(t), table)
	c := dynamostore.NewCached(s, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb) })
	if err := c.Commit("token", []byte("old"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	err := c.Commit("token", []byte("new"), time.Now().Add(time.Hour))
	if !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("got %v: expected the cache's error", err)
	}
	mustFind(t, s, "token", "old")
	mustFind(t, c, "token", "old")
	if st := c.Stats(); st.CacheErrors != 2 {
		t.Fatalf("got %+v: expected 2 cache errors", st)
	}
}

// jitterCache waits a random 0-4 ms around every call.
type jitterCache struct{ *Cache }

func (c jitterCache) Lookup(ctx context.Context, token string, lease bool) (dynamostore.CacheLookup, error) {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.Cache.Lookup(ctx, token, lease)
}

func (c jitterCache) Fill(ctx context.Context, token string, lease uint64, entry *dynamostore.CacheEntry, until time.Time) error {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.Cache.Fill(ctx, token, lease, entry, until)
}

func (c jitterCache) BeginWrite(ctx context.Context, token string) (uint64, error) {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.Cache.BeginWrite(ctx, token)
}

func (c jitterCache) EndWrite(ctx context.Context, token string, write uint64, entry *dynamostore.CacheEntry, until time.Time) error {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.Cache.EndWrite(ctx, token, write, entry, until)
}

// TestLinearizableTwoInstances: two instances, each with a client and a
// Cache of its own on one redis-server, are linearizable together, with a
// random delay around every DynamoDB and Redis call; with SkipWriteWithin
// too.
func TestLinearizableTwoInstances(t *testing.T) {
	t.Parallel()
	for _, skip := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "skip-write"}[skip], func(t *testing.T) {
			t.Parallel()
			rdb := newRedis(t)
			table := newTable(t)
			cfg := linearize.Config{Workers: 8, OpsPerWorker: 300, Tokens: 2, RepeatData: skip}
			if skip {
				cfg.Tokens = 4 // more hits to skip against
			}
			var targets []linearize.Target
			var caches []*dynamostore.CachedStore
			for range 2 {
				s := newStore(t, linearize.JitterDynamoDB{DynamoDB: newClient(t)}, table)
				c := dynamostore.NewCached(s, func(o *dynamostore.CacheOptions) {
					o.Cache = jitterCache{New(rdb)}
					if skip {
						o.SkipWriteWithin = time.Hour
					}
				})
				caches = append(caches, c)
				targets = append(targets, linearize.Target{Find: c.FindCtx, Commit: c.CommitCtx, Delete: c.DeleteCtx})
			}
			counts := linearize.Run(t, cfg, targets...)
			t.Logf("two CachedStores on one redis-server: %s; %+v; %+v", counts, caches[0].Stats(), caches[1].Stats())
			if hits := caches[0].Stats().Hits + caches[1].Stats().Hits; hits == 0 {
				t.Fatal("expected some hits")
			}
		})
	}
}

// heldPut holds the first PutItem, before it is sent, until release.
type heldPut struct {
	dynamostore.Client
	once             sync.Once
	reached, release chan struct{}
}

func (c *heldPut) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.once.Do(func() { close(c.reached); <-c.release })
	return c.Client.PutItem(ctx, in, optFns...)
}

// heldEnd holds the first EndWrite until release.
type heldEnd struct {
	*Cache
	once             sync.Once
	reached, release chan struct{}
}

func (c *heldEnd) EndWrite(ctx context.Context, token string, write uint64, e *dynamostore.CacheEntry, until time.Time) error {
	c.once.Do(func() { close(c.reached); <-c.release })
	return c.Cache.EndWrite(ctx, token, write, e, until)
}

// TestLapsedWriteMark: instance A's write outlasts WriteTimeout, so its
// mark lapses; B's Commit begins after the lapse, lands in DynamoDB before
// A's write, and ends after A's write returned. Redis must not then hold
// B's data: A's end spoils B's period. For a Delete and for a Commit.
func TestLapsedWriteMark(t *testing.T) {
	t.Parallel()
	for _, del := range []bool{true, false} {
		t.Run(map[bool]string{true: "delete", false: "commit"}[del], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := newRedis(t)
			table := newTable(t)
			hp := &heldPut{Client: newClient(t), reached: make(chan struct{}), release: make(chan struct{})}
			sa, sb := newStore(t, hp, table), newStore(t, newClient(t), table)
			short := func(o *Options) { o.WriteTimeout = time.Second }
			he := &heldEnd{Cache: New(rdb, short), reached: make(chan struct{}), release: make(chan struct{})}
			a := dynamostore.NewCached(sa, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb, short) })
			b := dynamostore.NewCached(sb, func(o *dynamostore.CacheOptions) { o.Cache = he })
			if err := sb.Commit("token", []byte("v0"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			aDone := make(chan error)
			go func() {
				if del {
					aDone <- a.Delete("token")
				} else {
					aDone <- a.Commit("token", []byte("v1"), time.Now().Add(time.Hour))
				}
			}()
			wait(t, hp.reached)
			// A's mark lapses; nothing announces it, so poll.
			hang := time.Now().Add(hangTimeout)
			for rdb.Exists(ctx, keyOf(table, "token")).Val() != 0 {
				if time.Now().After(hang) {
					t.Fatal("the write mark never lapsed")
				}
				time.Sleep(time.Millisecond)
			}
			bDone := make(chan error)
			go func() { bDone <- b.Commit("token", []byte("v2"), time.Now().Add(time.Hour)) }()
			wait(t, he.reached)
			close(hp.release)
			if err := <-aDone; err != nil {
				t.Fatal(err)
			}
			close(he.release)
			if err := <-bDone; err != nil {
				t.Fatal(err)
			}
			want, _, err := sa.Find("token")
			if err != nil {
				t.Fatal(err)
			}
			mustFind(t, a, "token", string(want))
			mustFind(t, b, "token", string(want))
		})
	}
}

func wait(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(hangTimeout):
		t.Fatal("waited too long")
	}
}

// TestFencedApplications: two applications fenced apart by KeyPrefix in one
// table, sharing one Redis with the default rediscache options, never see
// each other's copies.
func TestFencedApplications(t *testing.T) {
	t.Parallel()
	rdb := newRedis(t)
	table := newTable(t)
	appA := newStore(t, newClient(t), table, func(o *dynamostore.Options) { o.KeyPrefix = "appA:" })
	appB := newStore(t, newClient(t), table, func(o *dynamostore.Options) { o.KeyPrefix = "appB:" })
	a := dynamostore.NewCached(appA, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb) })
	b := dynamostore.NewCached(appB, func(o *dynamostore.CacheOptions) { o.Cache = New(rdb) })
	if err := a.Commit("token", []byte("user 42 of app A"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, a, "token", "user 42 of app A")
	mustFind(t, b, "token", "")
}
