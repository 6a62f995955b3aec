package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/goleak"

	"github.com/dynamostore/dynamostore/internal/linearize"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// setClock stops the CachedStore's clock, and its in-process cache's, at the
// time of the call plus offset, so that only the test moves it.
func setClock(c *CachedStore, offset *atomic.Int64) {
	base := time.Now()
	now := func() time.Time { return base.Add(time.Duration(offset.Load())) }
	c.now = now
	if m, ok := c.cache.(*memCache); ok {
		m.now = now
	}
}

// holdStore is a backing store whose Find, once armed, reads the backing
// store and then waits for release before it returns.
type holdStore struct {
	scs.Store
	finds   atomic.Int64
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (h *holdStore) Find(token string) ([]byte, bool, error) {
	h.finds.Add(1)
	b, found, err := h.Store.Find(token)
	if h.armed.CompareAndSwap(true, false) {
		close(h.reached)
		<-h.release
	}
	return b, found, err
}

// FindExpiryCtx and CommitStoredCtx forward to the DynamoStore, holding
// FindExpiryCtx as Find is held, so that the CachedStore caches.
func (h *holdStore) FindExpiryCtx(ctx context.Context, token string) ([]byte, time.Time, bool, error) {
	h.finds.Add(1)
	b, expiry, found, err := h.Store.(CacheableStore).FindExpiryCtx(ctx, token)
	if h.armed.CompareAndSwap(true, false) {
		close(h.reached)
		<-h.release
	}
	return b, expiry, found, err
}

func (h *holdStore) CommitStoredCtx(ctx context.Context, token string, b []byte, expiry time.Time) (bool, error) {
	return h.Store.(CacheableStore).CommitStoredCtx(ctx, token, b, expiry)
}

// memBacking is scs's memstore as a CacheableStore: it has no revocations,
// so every Commit that succeeds stores, and it keeps each expiry.
type memBacking struct {
	*memstore.MemStore
	mu     sync.Mutex
	expiry map[string]time.Time
}

func newMemBacking() *memBacking {
	return &memBacking{MemStore: memstore.NewWithCleanupInterval(0), expiry: map[string]time.Time{}}
}

func (m *memBacking) FindExpiryCtx(_ context.Context, token string) ([]byte, time.Time, bool, error) {
	b, found, err := m.Find(token)
	m.mu.Lock()
	defer m.mu.Unlock()
	return b, m.expiry[token], found, err
}

func (m *memBacking) CommitStoredCtx(_ context.Context, token string, b []byte, expiry time.Time) (bool, error) {
	m.mu.Lock()
	m.expiry[token] = expiry
	m.mu.Unlock()
	return true, m.Commit(token, b, expiry)
}

func newHoldStore(s scs.Store) *holdStore {
	return &holdStore{Store: s, reached: make(chan struct{}), release: make(chan struct{})}
}

// heldCache commits token with data straight to a new DynamoStore and
// returns a CachedStore over it whose first backing Find is held.
func heldCache(t *testing.T, token, data string) (*CachedStore, *holdStore) {
	t.Helper()
	s := newStore(t, nil)
	if err := s.Commit(token, []byte(data), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	hold := newHoldStore(s)
	hold.armed.Store(true)
	return NewCached(hold), hold
}

func mustFind(t *testing.T, s scs.Store, token string, want string) {
	t.Helper()
	b, found, err := s.Find(token)
	if err != nil {
		t.Fatal(err)
	}
	if want == "" {
		if found {
			t.Fatalf("got %q for %s: expected not found", b, token)
		}
		return
	}
	if !found || string(b) != want {
		t.Fatalf("got %q, %v for %s: expected %q", b, found, token, want)
	}
}

func TestCachedFindHit(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	c := NewCached(newStore(t, spy))
	if err := c.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustFind(t, c, "token", "data")
	}
	if n := spy.gets.Load(); n != 0 {
		t.Fatalf("got %d GetItem: expected hits to make no backing call", n)
	}
	if st := c.Stats(); st.Hits != 3 || st.Misses != 0 {
		t.Fatalf("got %+v: expected 3 hits, no miss", st)
	}
}

func TestCachedFindMiss(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy)
	c := NewCached(s)
	if err := s.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "token", "data")
	mustFind(t, c, "token", "data")
	mustFind(t, c, "missing", "")
	if n := spy.gets.Load(); n != 2 {
		t.Fatalf("got %d GetItem: expected one per missed token", n)
	}
	if st := c.Stats(); st.Hits != 1 || st.Misses != 2 {
		t.Fatalf("got %+v: expected 1 hit, 2 misses", st)
	}
}

func TestCachedConcurrentMissesShareRead(t *testing.T) {
	t.Parallel()
	c, hold := heldCache(t, "token", "data")
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b, found, err := c.Find("token"); err != nil || !found || string(b) != "data" {
				errs <- fmt.Errorf("got %q, %v, %v", b, found, err)
			}
		}()
	}
	<-hold.reached
	waitUntil(t, "every Find to miss and wait on the one read", func() bool { return c.Stats().Misses == n })
	close(hold.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := hold.finds.Load(); got != 1 {
		t.Fatalf("got %d backing reads: expected 1", got)
	}
}

func TestCachedMaxStale(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	c := NewCached(s, func(o *CacheOptions) { o.MaxStale = time.Minute })
	var offset atomic.Int64
	setClock(c, &offset)
	if err := c.Commit("token", []byte("old"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Another instance changes the session behind this cache's back.
	if err := s.Commit("token", []byte("new"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(59 * time.Second))
	mustFind(t, c, "token", "old")
	offset.Store(int64(time.Minute))
	mustFind(t, c, "token", "new")
}

func TestCachedNeverOutlivesExpiry(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	c := NewCached(s, func(o *CacheOptions) { o.MaxStale = time.Hour })
	var offset atomic.Int64
	setClock(c, &offset)
	expiry := time.Now().Add(10 * time.Minute)
	if err := c.Commit("token", []byte("data"), expiry); err != nil {
		t.Fatal(err)
	}
	// Commit it again straight to the backing store, with a short expiry the
	// cache learns only from a miss.
	if err := s.Commit("other", []byte("data"), expiry); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "other", "data")
	misses := c.Stats().Misses
	offset.Store(int64(11 * time.Minute))
	s.now = func() time.Time { return time.Now().Add(11 * time.Minute) }
	mustFind(t, c, "token", "")
	mustFind(t, c, "other", "")
	if got := c.Stats().Misses - misses; got != 2 {
		t.Fatalf("got %d misses: expected both expired entries to miss", got)
	}
}

// failingStore fails every Commit.
type failingStore struct{ scs.Store }

var errBackingDown = errors.New("backing store down")

func (failingStore) Commit(string, []byte, time.Time) error { return errBackingDown }

func TestCachedCommitBackingFails(t *testing.T) {
	t.Parallel()
	mem := memstore.NewWithCleanupInterval(0)
	backing := &struct{ scs.Store }{mem}
	c := NewCached(backing)
	if err := c.Commit("token", []byte("old"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	backing.Store = failingStore{mem}
	if err := c.Commit("token", []byte("new"), time.Now().Add(time.Hour)); !errors.Is(err, errBackingDown) {
		t.Fatalf("got %v: expected the backing error", err)
	}
	mustFind(t, c, "token", "old")
}

func TestCachedDeleteDuringMiss(t *testing.T) {
	t.Parallel()
	c, hold := heldCache(t, "token", "data")

	first := make(chan error, 1)
	go func() {
		_, _, err := c.Find("token") // reads "data", then is held
		first <- err
	}()
	<-hold.reached
	if err := c.Delete("token"); err != nil {
		t.Fatal(err)
	}
	// Started after Delete returned, while the old read is still held: it
	// must not wait for, nor return, that read.
	after := make(chan bool, 1)
	go func() { _, found, _ := c.Find("token"); after <- found }()
	select {
	case found := <-after:
		if found {
			t.Fatal("got found: expected the deleted session gone")
		}
	case <-time.After(hangTimeout):
		t.Fatal("a Find after Delete waited on a read that began before it")
	}
	close(hold.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The held read finished after the Delete: it must not have been cached.
	mustFind(t, c, "token", "")
	if n := hold.finds.Load(); n != 3 {
		t.Fatalf("got %d backing reads: expected 3", n)
	}
}

// ctxHoldStore is a backing store whose FindCtx, once armed, waits for its
// context to end before it returns.
type ctxHoldStore struct {
	*memstore.MemStore
	armed   atomic.Bool
	reached chan struct{}
}

func (h *ctxHoldStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if h.armed.CompareAndSwap(true, false) {
		close(h.reached)
		<-ctx.Done()
		return nil, false, ctx.Err()
	}
	return h.MemStore.Find(token)
}

func (h *ctxHoldStore) CommitCtx(_ context.Context, token string, b []byte, expiry time.Time) error {
	return h.MemStore.Commit(token, b, expiry)
}

func (h *ctxHoldStore) DeleteCtx(_ context.Context, token string) error {
	return h.MemStore.Delete(token)
}

func TestCachedJoinerOutlivesCancelledFill(t *testing.T) {
	t.Parallel()
	backing := &ctxHoldStore{MemStore: memstore.NewWithCleanupInterval(0), reached: make(chan struct{})}
	backing.MemStore.Commit("token", []byte("data"), time.Now().Add(time.Hour))
	backing.armed.Store(true)
	c := NewCached(backing)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, _, err := c.FindCtx(ctx, "token"); first <- err }()
	<-backing.reached
	second := make(chan error, 1)
	go func() {
		b, found, err := c.Find("token")
		if err == nil && (!found || string(b) != "data") {
			err = fmt.Errorf("got %q, %v", b, found)
		}
		second <- err
	}()
	waitUntil(t, "the second Find to miss and wait on the first's read", func() bool { return c.Stats().Misses == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v: expected the first Find cancelled", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("got %v: expected the second Find unaffected by the first's cancellation", err)
	}
}

// slowCache is a shared cache layer whose ends of writes take until
// release, as a shared cache's may when its server struggles.
type slowCache struct {
	*memCache
	writing chan string // the token of each write as it ends
	release chan struct{}
}

func (c *slowCache) EndWrite(ctx context.Context, token string, write uint64, entry *CacheEntry, until time.Time) error {
	c.writing <- token
	<-c.release
	return c.memCache.EndWrite(ctx, token, write, entry, until)
}

// TestCachedSlowCacheStallsOnlyItsToken: while one token's cache write
// hangs, a miss of another token that hashes to the same stripe returns its
// session. The write is held until the Find has returned, so a Find that
// waited for it would wait until hangTimeout; no deadline of its own is
// needed (one of 100 ms once ended its GetItem on a loaded machine).
func TestCachedSlowCacheStallsOnlyItsToken(t *testing.T) {
	t.Parallel()
	backing := newStore(t, nil)
	cache := &slowCache{memCache: newMemCache(defaultMaxBytes, defaultMaxEntries), writing: make(chan string, 8), release: make(chan struct{})}
	c := NewCached(backing, func(o *CacheOptions) { o.Cache = cache })
	other := ""
	for i := 0; other == ""; i++ {
		if tok := fmt.Sprintf("other-%d", i); c.stripe(tok) == c.stripe("slow") && cache.stripe(c.cacheKey(tok)) == cache.stripe(c.cacheKey("slow")) {
			other = tok
		}
	}
	expiry := time.Now().Add(time.Hour)
	backing.Commit(other, []byte("other's"), expiry)

	committed := make(chan error, 1)
	go func() { committed <- c.Commit("slow", []byte("data"), expiry) }()
	if tok := <-cache.writing; tok != c.cacheKey("slow") {
		t.Fatalf("got a write of %q: expected the slow token's", tok)
	}

	found := make(chan error, 1)
	go func() {
		b, ok, err := c.FindCtx(context.Background(), other)
		if err == nil && (!ok || string(b) != "other's") {
			err = fmt.Errorf("got %q, %v: expected the other session", b, ok)
		}
		found <- err
	}()
	select {
	case err := <-found:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-committed:
		t.Fatalf("the slow write ended first (%v): expected it still held", err)
	case <-time.After(hangTimeout):
		t.Fatal("a Find of another token waited for the slow token's cache write")
	}
	if st := c.Stats(); st.Misses != 1 {
		t.Fatalf("got %+v: expected one miss, the other token's", st)
	}
	close(cache.release)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "slow", "data")
}

func TestCachedSkipWriteAfterDeleteDuringMiss(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	expiry := time.Now().Add(time.Hour)
	if err := s.Commit("token", []byte("data"), expiry); err != nil {
		t.Fatal(err)
	}
	held := newHeldGetClient(s.client)
	s.client = held
	c := NewCached(s, func(o *CacheOptions) { o.SkipWriteWithin = time.Minute })
	done := make(chan struct{})
	go func() { c.Find("token"); close(done) }() // reads "data", then is held
	<-held.reached
	if err := c.Delete("token"); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	<-done
	// The read that raced the Delete must not count as "last read": this
	// Commit has to reach DynamoDB, which refuses it, the token being
	// revoked.
	if err := c.Commit("token", []byte("data"), expiry.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.SkippedWrites != 0 {
		t.Fatalf("got %+v: expected the Commit not skipped", st)
	}
	mustFind(t, s, "token", "")
	mustFind(t, c, "token", "")
}

// heldGetClient holds its first GetItem, once DynamoDB has answered it,
// until release is closed, after closing reached.
type heldGetClient struct {
	Client
	once             sync.Once
	reached, release chan struct{}
}

func newHeldGetClient(c Client) *heldGetClient {
	return &heldGetClient{Client: c, reached: make(chan struct{}), release: make(chan struct{})}
}

func (c *heldGetClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := c.Client.GetItem(ctx, in, optFns...)
	c.once.Do(func() {
		close(c.reached)
		<-c.release
	})
	return out, err
}

func TestCachedCommitDuringMiss(t *testing.T) {
	t.Parallel()
	c, hold := heldCache(t, "token", "old")
	done := make(chan struct{})
	go func() { c.Find("token"); close(done) }()
	<-hold.reached
	if err := c.Commit("token", []byte("new"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	close(hold.release)
	<-done
	mustFind(t, c, "token", "new")
}

func TestCachedRace(t *testing.T) {
	t.Parallel()
	c := NewCached(newStore(t, nil), func(o *CacheOptions) { o.MaxEntries = 8 })
	const workers = 16
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				token := fmt.Sprintf("token-%d", (w+i)%5) // shared between workers
				own := fmt.Sprintf("own-%d-%d", w, i)     // a deleted token stays revoked
				if err := c.Commit(own, []byte{byte(i)}, time.Now().Add(time.Hour)); err != nil {
					errs <- err
					return
				}
				c.Find(token)
				c.Commit(token, []byte{byte(w)}, time.Now().Add(time.Hour))
				if b, found, err := c.Find(own); err != nil || !found || !bytes.Equal(b, []byte{byte(i)}) {
					errs <- fmt.Errorf("got %v, %v, %v: expected own write %d", b, found, err, i)
					return
				}
				if err := c.Delete(own); err != nil {
					errs <- err
					return
				}
				if _, found, err := c.Find(own); err != nil || found {
					errs <- fmt.Errorf("got %v, %v: expected own session gone after Delete", found, err)
					return
				}
				c.Delete(token)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestCachedBoundedInBytes: 256 sessions of 256 KiB in memory, 64 MiB in
// all (compressible, so that DynamoDB can store them with CompressAbove),
// through a CachedStore with MaxBytes 4 MiB leave the heap within 4 MiB and a
// little more. Not parallel: it measures the process's heap.
func TestCachedBoundedInBytes(t *testing.T) {
	const maxBytes, sessions, size = 4 << 20, 256, 256 << 10
	s := newStore(t, nil, func(o *Options) { o.CompressAbove = 1024 })
	c := NewCached(s, func(o *CacheOptions) { o.MaxBytes = maxBytes })
	session := func(i int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("session %d, line of a page it viewed\n", i)), size/20)[:size]
	}
	heap := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	// Warm the codec's buffers, which the store keeps whatever the cache.
	expiry := time.Now().Add(time.Hour)
	for i := range 3 {
		if err := s.Commit("warm", session(-i), expiry); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Find("warm"); err != nil {
			t.Fatal(err)
		}
	}
	base := heap()
	// The slack is for otter's own structures, sized for the 16,000
	// entries a 4 MiB cache of the smallest sessions could hold.
	const slack = 2 << 20
	m := c.cache.(*memCache)
	check := func(phase string) {
		t.Helper()
		grown := heap() - base
		t.Logf("%d sessions of %d bytes %s a cache of MaxBytes %d: the heap grew by %d bytes", sessions, size, phase, maxBytes, grown)
		if grown > maxBytes+slack {
			t.Fatalf("%s: the heap grew by %d bytes: expected at most MaxBytes, %d, and %d more", phase, grown, maxBytes, slack)
		}
		// The cache was full, or the bound proves nothing. Which sessions
		// it kept is otter's choice.
		m.c.CleanUp() // finish evictions in flight
		if w := m.c.WeightedSize(); w < maxBytes/2 || w > maxBytes {
			t.Fatalf("%s: the cache weighs %d bytes: expected it at least half full and within MaxBytes, %d", phase, w, maxBytes)
		}
	}
	// Committed: the cache holds the caller's slices, here cut from
	// arrays twice their length, as an encoder's buffer may be: it must
	// count what they hold, not their length.
	for i := range sessions {
		if err := c.Commit(fmt.Sprintf("token-%d", i), session(i), expiry); err != nil {
			t.Fatal(err)
		}
	}
	check("committed through")
	// Found: mostly misses, each caching what it read.
	for i := range sessions {
		if b, found, err := c.Find(fmt.Sprintf("token-%d", i)); !found || err != nil || len(b) != size {
			t.Fatalf("got %d bytes, %v, %v: expected session %d", len(b), found, err, i)
		}
	}
	check("found through")
}

// memSet caches data for token in m, as a Commit through a CachedStore does.
func memSet(m *memCache, token string, data []byte, until time.Time) {
	ctx := context.Background()
	m.BeginWrite(ctx, token)
	m.EndWrite(ctx, token, 0, &CacheEntry{Data: data, Expiry: until}, until)
}

// TestCachedBounded is not parallel: it measures the process's heap, which
// other tests' allocations would move.
func TestCachedBounded(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	c := NewCached(newMemBacking(), func(o *CacheOptions) { o.SkipWriteWithin = time.Minute })
	m := c.cache.(*memCache)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	data := bytes.Repeat([]byte{'x'}, 100)
	until := time.Now().Add(time.Hour)
	empty := heap()
	for i := range 10_000 {
		memSet(m, fmt.Sprintf("token-%d", i), bytes.Clone(data), until) // scs encodes anew each time
	}
	warm := heap()
	// Each entry's token and data take 128 bytes (two allocations).
	overhead := int64(warm-empty)/10_000 - 128
	t.Logf("a full cache of 10,000 sessions of 100 bytes: %d bytes of heap, %d per entry beyond its token and data", warm-empty, overhead)
	if overhead > entryOverhead {
		t.Fatalf("got %d bytes per entry beyond its token and data: expected at most entryOverhead, %d, which MaxBytes counts", overhead, entryOverhead)
	}
	for i := range 200_000 {
		memSet(m, fmt.Sprintf("token-%d", i), bytes.Clone(data), until) // scs encodes anew each time
	}
	m.c.CleanUp() // otter evicts in the background; finish now
	if n := m.c.EstimatedSize(); n > 10_000 {
		t.Fatalf("got %d entries: expected at most the bound, 10000", n)
	}
	// 190,000 more entries of 100 bytes would be over 40 MB.
	if after := heap(); after > warm+10<<20 {
		t.Fatalf("heap grew from %d to %d bytes: expected it flat", warm, after)
	}
	// otter evicts on goroutines of its own: none may stay. They end soon,
	// but not at once on a busy machine: give them until a hang.
	for i := range 100_000 {
		c.Commit(fmt.Sprintf("token-%d", i), data, until) // through SkipWriteWithin's cache too
	}
	hang := time.Now().Add(hangTimeout)
	for err := goleak.Find(ignore); err != nil; err = goleak.Find(ignore) {
		if time.Now().After(hang) {
			t.Fatal(err)
		}
	}
}

func TestCachedSkipWrite(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy)
	c := NewCached(s, func(o *CacheOptions) { o.SkipWriteWithin = time.Minute })
	start := time.Now().Add(time.Hour)
	steps := []struct {
		data    string
		expiry  time.Time
		written bool
	}{
		{"a", start, true},
		{"a", start.Add(30 * time.Second), false}, // same data, expiry moved less than a minute
		{"a", start.Add(59 * time.Second), false},
		{"a", start.Add(time.Minute), true}, // moved a minute from what the backing store holds
		{"b", start.Add(time.Minute), true}, // new data
		{"b", start, true},                  // an earlier expiry is always written
	}
	for i, step := range steps {
		puts := spy.puts.Load()
		if err := c.Commit("token", []byte(step.data), step.expiry); err != nil {
			t.Fatal(err)
		}
		if written := spy.puts.Load() > puts; written != step.written {
			t.Fatalf("step %d: got written %v: expected %v", i, written, step.written)
		}
	}
	if got := c.Stats().SkippedWrites; got != 2 {
		t.Fatalf("got %d skipped writes: expected 2", got)
	}
	// Off by default.
	c = NewCached(s)
	puts := spy.puts.Load()
	c.Commit("t2", []byte("a"), start)
	c.Commit("t2", []byte("a"), start.Add(time.Second))
	if spy.puts.Load()-puts != 2 {
		t.Fatal("expected no skipped writes by default")
	}
}

// TestCachedSkipWriteScenario measures the writes SkipWriteWithin saves for
// scs's IdleTimeout: one session, a request every 5 seconds for an hour,
// each committing the same data with expiry now + 30 minutes.
func TestCachedSkipWriteScenario(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	c := NewCached(newStore(t, spy), func(o *CacheOptions) { o.SkipWriteWithin = time.Minute })
	data := bytes.Repeat([]byte{'s'}, 512)
	start := time.Now()
	const requests = 720
	for i := range requests {
		if err := c.Commit("token", data, start.Add(time.Duration(i)*5*time.Second+30*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	writes := spy.puts.Load()
	t.Logf("SkipWriteWithin 1m, a request every 5s: %d commits, %d PutItem, %.1f%% of writes saved",
		requests, writes, 100*float64(requests-int(writes))/requests)
	if writes != requests/12 { // one write per minute of expiry movement
		t.Fatalf("got %d writes: expected %d", writes, requests/12)
	}
}

// TestCachedMaxStaleHitRate measures the hit rate a single instance gets
// for several MaxStale values, on a simulated browsing pattern: each of 200
// users views 20 pages, a think time of 2 to 60 seconds apart (uniform), each
// page one HTML request and three XHR requests within 300 ms, every request a
// Find and then a Commit of the same data (scs with IdleTimeout). The
// default MaxStale, 10 s, is read off this table.
func TestCachedMaxStaleHitRate(t *testing.T) {
	t.Parallel()
	var prev float64
	for _, maxStale := range []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute} {
		c := NewCached(newMemBacking(), func(o *CacheOptions) { o.MaxStale = maxStale })
		var offset atomic.Int64
		setClock(c, &offset)
		r := rand.New(rand.NewPCG(1, 2))
		for u := range 200 {
			token := fmt.Sprintf("user-%d", u)
			at := time.Duration(0)
			for range 20 {
				at += 2*time.Second + time.Duration(r.Int64N(int64(58*time.Second)))
				for req := range 4 {
					offset.Store(int64(at + time.Duration(req)*100*time.Millisecond))
					c.Find(token)
					if err := c.Commit(token, []byte("session"), c.now().Add(30*time.Minute)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		st := c.Stats()
		rate := float64(st.Hits) / float64(st.Hits+st.Misses)
		t.Logf("MaxStale %v: hit rate %.1f%% (%d hits, %d misses)", maxStale, 100*rate, st.Hits, st.Misses)
		if rate < prev {
			t.Fatalf("got hit rate %.3f at MaxStale %v: expected no lower than %.3f", rate, maxStale, prev)
		}
		prev = rate
	}
}

func TestCachedTwoInstances(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)

	// In-process caches: a Delete on b reaches a within MaxStale.
	a := NewCached(s, func(o *CacheOptions) { o.MaxStale = time.Minute })
	b := NewCached(s, func(o *CacheOptions) { o.MaxStale = time.Minute })
	var offset atomic.Int64
	setClock(a, &offset)
	if err := a.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("token"); err != nil {
		t.Fatal(err)
	}
	mustFind(t, a, "token", "data") // stale, as documented
	offset.Store(int64(time.Minute))
	mustFind(t, a, "token", "")

	// A Commit through a stale copy stores nothing and drops the copy.
	if err := a.Commit("again", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("again"); err != nil {
		t.Fatal(err)
	}
	mustFind(t, a, "again", "data") // stale, as documented
	if err := a.Commit("again", []byte("data2"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("got %v: expected a Commit of a revoked session to return nil", err)
	}
	if !sessionitem.Revoked(rawItem(t, s, "again")) {
		t.Fatal("expected the revocation to stay")
	}
	mustFind(t, a, "again", "") // the copy is gone, before MaxStale

	// A shared cache: at once.
	shared := newMemCache(defaultMaxBytes, defaultMaxEntries)
	a = NewCached(s, func(o *CacheOptions) { o.Cache = shared })
	b = NewCached(s, func(o *CacheOptions) { o.Cache = shared })
	if err := a.Commit("shared", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, b, "shared", "data")
	if err := b.Delete("shared"); err != nil {
		t.Fatal(err)
	}
	mustFind(t, a, "shared", "")
}

// TestCachedPlainCacheRefused: a Cache that is only an scs.Store is not
// shared, whatever it is: NewCached says so and each CachedStore keeps its
// own in-process cache, so a Commit through one cannot leave a stale copy
// where the other reads.
func TestCachedPlainCacheRefused(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	var log syncBuffer
	plain := memstore.NewWithCleanupInterval(0)
	logger := slog.New(slog.NewTextHandler(&log, nil))
	a := NewCached(s, func(o *CacheOptions) { o.Cache = plain; o.Logger = logger })
	log.waitFor(t, "CacheOptions.Cache is not a SharedCache")
	if _, ok := a.cache.(*memCache); !ok {
		t.Fatalf("got a %T layer: expected the in-process cache", a.cache)
	}
	if err := a.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := plain.Find("token"); found {
		t.Fatal("expected nothing written to the plain store")
	}
}

func TestCachedAll(t *testing.T) {
	t.Parallel()
	c := NewCached(newStore(t, nil))
	if err := c.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	all, err := c.AllCtx(context.Background())
	if err != nil || len(all) != 1 || string(all["token"]) != "data" {
		t.Fatalf("got %v, %v: expected the one session", all, err)
	}
	if _, err := NewCached(struct{ scs.Store }{memstore.NewWithCleanupInterval(0)}).All(); err == nil {
		t.Fatal("expected an error for a backing store that cannot list")
	}
}

// TestCachedOwnErrors checks an error the CachedStore makes itself, a Find
// whose context ends while it waits on another's backing read: like the
// DynamoStore's, it names the operation and table and unwraps to the cause.
func TestCachedOwnErrors(t *testing.T) {
	t.Parallel()
	held := newHeldGetClient(newClient(t))
	s := newStore(t, held)
	c := NewCached(s)
	done := make(chan struct{})
	go func() { defer close(done); c.Find("token") }()
	<-held.reached
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := c.FindCtx(ctx, "token")
	close(held.release)
	<-done
	want := fmt.Sprintf("dynamostore: cached find in table %q", s.tableName)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v: expected %q wrapping the deadline", err, want)
	}
}

// jitterCache waits a random 0-4 ms before and after each call to a cache
// layer (linearize.JitterDynamoDB does the same for DynamoDB).
type jitterCache struct{ SharedCache }

func (c jitterCache) Lookup(ctx context.Context, token string, lease bool) (CacheLookup, error) {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.SharedCache.Lookup(ctx, token, lease)
}

func (c jitterCache) Fill(ctx context.Context, token string, lease uint64, entry *CacheEntry, until time.Time) error {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.SharedCache.Fill(ctx, token, lease, entry, until)
}

func (c jitterCache) BeginWrite(ctx context.Context, token string) (uint64, error) {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.SharedCache.BeginWrite(ctx, token)
}

func (c jitterCache) EndWrite(ctx context.Context, token string, write uint64, entry *CacheEntry, until time.Time) error {
	linearize.Jitter()
	defer linearize.Jitter()
	return c.SharedCache.EndWrite(ctx, token, write, entry, until)
}

// target is a store as linearize calls it.
func target(s scs.CtxStore) linearize.Target {
	return linearize.Target{Find: s.FindCtx, Commit: s.CommitCtx, Delete: s.DeleteCtx}
}

// TestLinearizable checks random concurrent histories of Find, Commit and
// Delete for linearizability per token, with a random delay before and
// after every DynamoDB call and every cache call: the bare store, the
// CachedStore, the CachedStore with SkipWriteWithin, and two CachedStores
// (two instances, each with a client of its own) sharing one cache layer.
// A Delete revokes its token for good, as the model says.
func TestLinearizable(t *testing.T) {
	t.Parallel()
	cfg := linearize.Config{Workers: 8, OpsPerWorker: 300, Tokens: 2}
	cached := func(t *testing.T, s *DynamoStore, optFns ...func(*CacheOptions)) *CachedStore {
		layer := jitterCache{newMemCache(defaultMaxBytes, defaultMaxEntries)}
		return NewCached(s, append([]func(*CacheOptions){func(o *CacheOptions) { o.Cache = layer }}, optFns...)...)
	}
	t.Run("bare", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, linearize.JitterDynamoDB{DynamoDB: newClient(t)})
		t.Logf("bare DynamoStore: %s", linearize.Run(t, cfg, target(s)))
	})
	t.Run("cached", func(t *testing.T) {
		t.Parallel()
		c := cached(t, newStore(t, linearize.JitterDynamoDB{DynamoDB: newClient(t)}))
		counts := linearize.Run(t, cfg, target(c))
		t.Logf("CachedStore: %s; %+v", counts, c.Stats())
	})
	t.Run("skip-write", func(t *testing.T) {
		t.Parallel()
		// Four tokens, for more hits to skip against: about 15 skipped
		// writes a run.
		skip := cfg
		skip.RepeatData, skip.Tokens = true, 4
		c := cached(t, newStore(t, linearize.JitterDynamoDB{DynamoDB: newClient(t)}), func(o *CacheOptions) { o.SkipWriteWithin = time.Hour })
		counts := linearize.Run(t, skip, target(c))
		t.Logf("CachedStore with SkipWriteWithin: %s; %+v", counts, c.Stats())
		if c.Stats().SkippedWrites == 0 {
			t.Fatal("expected some Commits skipped")
		}
	})
	t.Run("two-instances-shared-layer", func(t *testing.T) {
		t.Parallel()
		fns := newTable(t)
		layer := jitterCache{newMemCache(defaultMaxBytes, defaultMaxEntries)}
		var targets []linearize.Target
		for range 2 {
			s := NewWithCleanupInterval(linearize.JitterDynamoDB{DynamoDB: newClient(t)}, 0, fns...)
			targets = append(targets, target(NewCached(s, func(o *CacheOptions) { o.Cache = layer })))
		}
		t.Logf("two CachedStores, one shared layer: %s", linearize.Run(t, cfg, targets...))
	})
}

// failingEnd is a shared cache layer whose EndWrite fails, once armed,
// without reaching the layer, as a Redis that went down mid-write would.
type failingEnd struct {
	*memCache
	armed atomic.Bool
}

func (c *failingEnd) EndWrite(ctx context.Context, token string, write uint64, entry *CacheEntry, until time.Time) error {
	if c.armed.Load() {
		return errCacheDown
	}
	return c.memCache.EndWrite(ctx, token, write, entry, until)
}

// TestCachedFailedCacheWriteServesNothingStale: a cache write that fails
// after the backing write succeeded leaves no copy of the old data.
func TestCachedFailedCacheWriteServesNothingStale(t *testing.T) {
	t.Parallel()
	layer := &failingEnd{memCache: newMemCache(defaultMaxBytes, defaultMaxEntries)}
	c := NewCached(newStore(t, nil), func(o *CacheOptions) { o.Cache = layer })
	if err := c.Commit("token", []byte("role=admin"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "token", "role=admin")
	if c.Stats().Hits != 1 {
		t.Fatalf("got %+v: expected the copy cached", c.Stats())
	}
	layer.armed.Store(true)
	if err := c.Commit("token", []byte("role=user"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("got %v: expected the backing write's success", err)
	}
	mustFind(t, c, "token", "role=user")
	mustFind(t, c, "token", "role=user")
	if st := c.Stats(); st.Hits != 1 || st.CacheErrors != 1 {
		t.Fatalf("got %+v: expected the new data read from the backing store, and one cache error", st)
	}
}

// plainBacking wraps a DynamoStore without forwarding FindExpiryCtx and
// CommitStoredCtx, as a logging wrapper might: a backing store that cannot
// tell when the session it finds expires, nor whether a Commit stored it.
type plainBacking struct{ s *DynamoStore }

func (p plainBacking) Find(token string) ([]byte, bool, error) { return p.s.Find(token) }
func (p plainBacking) Commit(token string, b []byte, expiry time.Time) error {
	return p.s.Commit(token, b, expiry)
}
func (p plainBacking) Delete(token string) error { return p.s.Delete(token) }

// TestCachedPlainBacking: in front of a backing store that is not a
// CacheableStore, a CachedStore caches nothing, and says so: a Commit of a
// revoked token, which the wrapper reports as a success, is not served.
func TestCachedPlainBacking(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	var log syncBuffer
	c := NewCached(plainBacking{s}, func(o *CacheOptions) { o.Logger = slog.New(slog.NewTextHandler(&log, nil)) })
	log.waitFor(t, "not a CacheableStore")
	expiry := time.Now().Add(time.Hour)
	if err := c.Commit("token", []byte("data"), expiry); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "token", "data")
	mustFind(t, c, "token", "data")
	if st := c.Stats(); st.Hits != 0 || st.Misses != 2 {
		t.Fatalf("got %+v: expected no copies", st)
	}
	if err := c.Delete("token"); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit("token", []byte("data"), expiry); err != nil { // a request in flight
		t.Fatal(err)
	}
	mustFind(t, c, "token", "")
}

// TestCachedMaxStaleFromRead: a copy's MaxStale counts from when its read
// began, however long the response took, so another instance's Delete is
// unseen for at most MaxStale.
func TestCachedMaxStaleFromRead(t *testing.T) {
	t.Parallel()
	held := newHeldGetClient(newClient(t))
	fns := newTable(t)
	sa := NewWithCleanupInterval(held, 0, fns...)
	sb := NewWithCleanupInterval(newClient(t), 0, fns...)
	if err := sb.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	a := NewCached(sa) // MaxStale 10 s
	var offset atomic.Int64
	setClock(a, &offset)
	done := make(chan struct{})
	go func() { a.Find("token"); close(done) }()
	waitChan(t, held.reached, "DynamoDB to answer the read")
	if err := sb.Delete("token"); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(5 * time.Second)) // the response takes 5 s to arrive
	close(held.release)
	waitChan(t, done, "the Find to return")
	offset.Store(int64(10 * time.Second))
	mustFind(t, a, "token", "")
}

// panicking is a backing store whose FindExpiryCtx panics once armed, as a
// buggy wrapper might; net/http recovers such a panic and serves on.
type panicking struct {
	*DynamoStore
	armed atomic.Bool
}

func (p *panicking) FindExpiryCtx(ctx context.Context, token string) ([]byte, time.Time, bool, error) {
	if p.armed.CompareAndSwap(true, false) {
		panic("backing store bug")
	}
	return p.DynamoStore.FindExpiryCtx(ctx, token)
}

// TestCachedFindPanicReleases: a panic in the backing read of a miss that
// holds the token's lease does not leave the token stuck: the next Find
// reads and caches as usual.
func TestCachedFindPanicReleases(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	backing := &panicking{DynamoStore: s}
	backing.armed.Store(true)
	c := NewCached(backing)
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("expected the backing store's panic")
			}
		}()
		c.Find("token")
	}()
	found := make(chan struct{})
	go func() {
		mustFind(t, c, "token", "data")
		mustFind(t, c, "token", "data")
		close(found)
	}()
	waitChan(t, found, "a Find after the panic")
	if st := c.Stats(); st.Hits != 1 {
		t.Fatalf("got %+v: expected the second Find a hit", st)
	}
	m := c.cache.(*memCache)
	st := m.stripe("token")
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.tokens) != 0 {
		t.Fatalf("got %d tokens with state: expected none left", len(st.tokens))
	}
}

// TestCachedZeroExpiry: a Commit with a zero expiry, which the backing
// store holds as expired, leaves no copy to serve.
func TestCachedZeroExpiry(t *testing.T) {
	t.Parallel()
	c := NewCached(newStore(t, nil))
	if err := c.Commit("token", []byte("data"), time.Time{}); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "token", "")
}

// TestNewCachedNil: NewCached refuses a nil backing store at once.
func TestNewCachedNil(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "backing store is nil") {
			t.Fatalf("got %v: expected a panic naming the nil backing store", r)
		}
	}()
	NewCached(nil)
}
