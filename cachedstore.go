package dynamostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// CacheOptions configures a CachedStore. NewCached fills in the defaults
// before it calls the caller's option functions.
type CacheOptions struct {
	// Cache is the cache layer. Nil, the default, means a bounded in-process
	// LRU cache. A cache shared by several application instances (scs's
	// goredisstore on Redis, say) makes a Delete on one instance visible to
	// all of them at once; see the README on running more than one instance.
	Cache scs.Store

	// MaxEntries bounds the in-process cache, in sessions; the least
	// recently used are evicted first. The default is 10,000.
	MaxEntries int

	// MaxStale is the longest a cached copy is served without asking the
	// backing store, and so the longest another instance's Delete or Commit
	// can go unseen with the in-process cache. A cached copy never outlives
	// the session's expiry either. The default is 10 seconds; zero or less
	// takes the default.
	MaxStale time.Duration

	// SkipWriteWithin saves backing writes for scs's IdleTimeout, which
	// commits the same data with a later expiry on every request: a Commit
	// whose data equals what this CachedStore last wrote for the token (or
	// read, from a DynamoStore, which tells the stored expiry), and whose
	// expiry moved forward less than SkipWriteWithin, does not reach the
	// backing store. The stored expiry then lags, so an idle session may
	// expire up to SkipWriteWithin early. Zero, the default, never skips.
	SkipWriteWithin time.Duration

	// MeterProvider makes the CachedStore's OpenTelemetry instruments:
	// lookups by result (hit or miss), skipped writes, and errors of the
	// cache layer, which cost a miss but are never the caller's. They
	// carry the table's name when the backing store is a DynamoStore. The
	// default is nil: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// CacheStats counts what a CachedStore did since it was created.
type CacheStats struct {
	Hits          uint64 // Finds answered by the cache
	Misses        uint64 // Finds that read the backing store
	SkippedWrites uint64 // Commits that SkipWriteWithin kept from the backing store
}

// CachedStore is an scs session store that keeps a cache in front of another
// store, such as a DynamoStore, the way django-dynamodb-sessions'
// cached_dynamodb backend did. Reads are served from the cache for up to
// CacheOptions.MaxStale; writes and deletes go to the backing store first
// and then to the cache, so the cache never holds data the backing store
// refused. It is safe for concurrent use.
type CachedStore struct {
	backing scs.Store
	cache   scs.Store
	opts    CacheOptions
	now     func() time.Time

	// Misses for one token share one backing read; a Commit or Delete marks
	// the read in flight stale, so its result is not cached. Striped so that
	// unrelated tokens do not wait on one lock.
	seed    maphash.Seed
	stripes [64]stripe

	// known remembers, per token, a hash of the data and the expiry the
	// backing store holds, for SkipWriteWithin.
	known *lru.Cache[string, knownWrite]

	hits, misses, skipped atomic.Uint64
	metrics               cacheMetrics
}

// cacheMetrics are a CachedStore's instruments and their attribute sets.
type cacheMetrics struct {
	lookups, skipped, errors metric.Int64Counter
	hit, miss, table         []metric.AddOption
}

func newCacheMetrics(mp metric.MeterProvider, backing scs.Store) cacheMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(instrumentationScope)
	var m cacheMetrics
	m.lookups, _ = meter.Int64Counter("dynamostore.cache.lookups",
		metric.WithDescription("CachedStore Finds, by result: hit (from the cache) or miss (from the backing store)."))
	m.skipped, _ = meter.Int64Counter("dynamostore.cache.skipped_writes",
		metric.WithDescription("CachedStore Commits that SkipWriteWithin kept from the backing store."))
	m.errors, _ = meter.Int64Counter("dynamostore.cache.errors",
		metric.WithDescription("Errors of the cache layer, each costing a miss."))
	var attrs []attribute.KeyValue
	if ds, ok := backing.(*DynamoStore); ok {
		attrs = append(attrs, attribute.String("table", ds.tableName))
	}
	with := func(kv ...attribute.KeyValue) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append(kv, attrs...)...))}
	}
	m.hit = with(attribute.String("result", "hit"))
	m.miss = with(attribute.String("result", "miss"))
	m.table = with()
	return m
}

type stripe struct {
	mu       sync.Mutex
	inflight map[string]*fill
}

// fill is one backing read that concurrent misses wait on.
type fill struct {
	done   chan struct{}
	data   []byte
	found  bool
	err    error
	stale  bool // guarded by the stripe's mutex
	expiry time.Time
}

type knownWrite struct {
	sum    uint64
	expiry time.Time
}

var (
	_ scs.Store            = (*CachedStore)(nil)
	_ scs.CtxStore         = (*CachedStore)(nil)
	_ scs.IterableStore    = (*CachedStore)(nil)
	_ scs.IterableCtxStore = (*CachedStore)(nil)
)

// NewCached returns a CachedStore in front of backing, with the defaults
// described at CacheOptions changed by optFns.
func NewCached(backing scs.Store, optFns ...func(*CacheOptions)) *CachedStore {
	o := CacheOptions{MaxEntries: 10_000, MaxStale: 10 * time.Second}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10_000
	}
	if o.MaxStale <= 0 {
		o.MaxStale = 10 * time.Second
	}
	c := &CachedStore{backing: backing, cache: o.Cache, opts: o, now: time.Now, seed: maphash.MakeSeed(),
		metrics: newCacheMetrics(o.MeterProvider, backing)}
	if c.cache == nil {
		c.cache = newMemCache(o.MaxEntries)
	}
	if o.SkipWriteWithin > 0 {
		c.known, _ = lru.New[string, knownWrite](o.MaxEntries)
	}
	for i := range c.stripes {
		c.stripes[i].inflight = make(map[string]*fill)
	}
	return c
}

// Stats returns the hit, miss and skipped-write counts so far.
func (c *CachedStore) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), SkippedWrites: c.skipped.Load()}
}

// Find returns the data for a session token, from the cache when it holds a
// fresh copy and from the backing store otherwise. It calls FindCtx with
// context.Background().
func (c *CachedStore) Find(token string) ([]byte, bool, error) {
	return c.FindCtx(context.Background(), token)
}

// FindCtx is like Find with a context, passed to the cache and the backing
// store where they take one.
func (c *CachedStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if token == "" {
		return nil, false, nil
	}
	b, found, err := findCtx(ctx, c.cache, token)
	if err == nil && found {
		c.hits.Add(1)
		c.metrics.lookups.Add(ctx, 1, c.metrics.hit...)
		return b, true, nil
	}
	if err != nil {
		c.metrics.errors.Add(ctx, 1, c.metrics.table...)
	}
	c.misses.Add(1)
	c.metrics.lookups.Add(ctx, 1, c.metrics.miss...)

	st := c.stripe(token)
	st.mu.Lock()
	if f, ok := st.inflight[token]; ok {
		st.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, false, c.opError("find", ctx.Err())
		}
		if f.err != nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
			// The read ended with its own caller's context, not ours:
			// read for ourselves rather than fail.
			b, _, found, err := c.findBacking(ctx, token)
			return b, found, err
		}
		return f.data, f.found, f.err
	}
	f := &fill{done: make(chan struct{})}
	st.inflight[token] = f
	st.mu.Unlock()

	f.data, f.expiry, f.found, f.err = c.findBacking(ctx, token)

	st.mu.Lock()
	if st.inflight[token] == f {
		delete(st.inflight, token)
	}
	if !f.stale && f.err == nil && f.found {
		// Under the stripe lock, so a Commit or Delete of this token cannot
		// slip in between the staleness check and the cache write.
		if !f.expiry.IsZero() {
			c.remember(token, f.data, f.expiry)
		}
		c.cacheCommit(ctx, token, f.data, f.expiry)
	}
	st.mu.Unlock()
	close(f.done)
	return f.data, f.found, f.err
}

// findBacking reads the backing store, with the session's expiry when the
// backing store can tell it.
func (c *CachedStore) findBacking(ctx context.Context, token string) ([]byte, time.Time, bool, error) {
	if ds, ok := c.backing.(*DynamoStore); ok {
		return ds.find(ctx, token)
	}
	b, found, err := findCtx(ctx, c.backing, token)
	return b, time.Time{}, found, err
}

// cacheCommit caches data until MaxStale from now or expiry, whichever comes
// first; a zero expiry means unknown. Cache errors are not the caller's: the
// backing store has the data, so a failed cache write only costs a miss.
func (c *CachedStore) cacheCommit(ctx context.Context, token string, data []byte, expiry time.Time) {
	now := c.now()
	until := now.Add(c.opts.MaxStale)
	// To the millisecond, as a DynamoStore keeps it, so that a cached copy
	// and the backing store agree on when the session ends.
	if expiry = expiry.Truncate(time.Millisecond); !expiry.IsZero() && expiry.Before(until) {
		until = expiry
	}
	if !until.After(now) {
		// Some caches keep an entry forever when given a past expiry
		// (goredisstore sends Redis no TTL for a negative one).
		if err := deleteCtx(ctx, c.cache, token); err != nil {
			c.metrics.errors.Add(ctx, 1, c.metrics.table...)
		}
		return
	}
	if err := commitCtx(ctx, c.cache, token, data, until); err != nil {
		c.metrics.errors.Add(ctx, 1, c.metrics.table...)
	}
}

// Commit writes the session to the backing store and then to the cache. It
// calls CommitCtx with context.Background().
func (c *CachedStore) Commit(token string, b []byte, expiry time.Time) error {
	return c.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is like Commit with a context. When the backing write fails, the
// cached copy is dropped too, so the cache never holds data the backing store
// may not have.
func (c *CachedStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	st := c.stripe(token)
	if c.skipWrite(token, b, expiry) {
		c.skipped.Add(1)
		c.metrics.skipped.Add(ctx, 1, c.metrics.table...)
		return nil
	}
	err := commitCtx(ctx, c.backing, token, b, expiry)
	st.mu.Lock()
	defer st.mu.Unlock()
	if f, ok := st.inflight[token]; ok {
		f.stale = true
		delete(st.inflight, token)
	}
	if err != nil {
		// Even when ctx is what failed: a shared cache must not keep the
		// old copy.
		if err := deleteCtx(context.WithoutCancel(ctx), c.cache, token); err != nil {
			c.metrics.errors.Add(ctx, 1, c.metrics.table...)
		}
		c.forget(token)
		return err
	}
	c.remember(token, b, expiry)
	c.cacheCommit(ctx, token, b, expiry)
	return nil
}

// Delete removes the session from the backing store and the cache. It calls
// DeleteCtx with context.Background().
func (c *CachedStore) Delete(token string) error {
	return c.DeleteCtx(context.Background(), token)
}

// DeleteCtx is like Delete with a context. Once it returns, no Find through
// this CachedStore returns the deleted session, even one whose backing read
// began before the Delete.
func (c *CachedStore) DeleteCtx(ctx context.Context, token string) error {
	err := deleteCtx(ctx, c.backing, token)
	if cerr := c.drop(ctx, token); err == nil && cerr != nil {
		err = c.opError("delete: remove from cache", cerr)
	}
	return err
}

// DeleteOwner on the CachedStore deletes through the backing DynamoStore and drops the
// cached copies, so no Find through this CachedStore returns them afterwards.
// Other CachedStores in front of the same table keep serving their copies
// for up to MaxStale, unless they share this one's cache (CacheOptions.Cache).
// See (*DynamoStore).DeleteOwner for what it deletes and costs. It returns an
// error when the backing store is not a *DynamoStore.
func (c *CachedStore) DeleteOwner(ctx context.Context, owner string) (deleted int, err error) {
	ds, ok := c.backing.(*DynamoStore)
	if !ok {
		return 0, c.opError("delete owner", fmt.Errorf("backing store %T is not a *DynamoStore", c.backing))
	}
	var mu sync.Mutex
	var cacheErr error
	deleted, err = ds.deleteOwner(ctx, owner, func(token string) {
		if err := c.drop(ctx, token); err != nil {
			mu.Lock()
			cacheErr = cmp.Or(cacheErr, err)
			mu.Unlock()
		}
	})
	if err == nil && cacheErr != nil {
		err = c.opError("delete owner: remove from cache", cacheErr)
	}
	return deleted, err
}

// drop removes the token's cached copy, and keeps a backing read in flight
// from caching it again.
func (c *CachedStore) drop(ctx context.Context, token string) error {
	st := c.stripe(token)
	st.mu.Lock()
	defer st.mu.Unlock()
	if f, ok := st.inflight[token]; ok {
		f.stale = true
		delete(st.inflight, token)
	}
	c.forget(token)
	err := deleteCtx(context.WithoutCancel(ctx), c.cache, token)
	if err != nil {
		c.metrics.errors.Add(ctx, 1, c.metrics.table...)
	}
	return err
}

// All returns every unexpired session, from the backing store. It calls
// AllCtx with context.Background().
func (c *CachedStore) All() (map[string][]byte, error) {
	return c.AllCtx(context.Background())
}

// AllCtx is like All with a context. It reads the backing store, which must
// be an scs.IterableStore or scs.IterableCtxStore, and bypasses the cache.
func (c *CachedStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	switch s := c.backing.(type) {
	case scs.IterableCtxStore:
		return s.AllCtx(ctx)
	case scs.IterableStore:
		return s.All()
	}
	return nil, c.opError("all", fmt.Errorf("backing store %T cannot list its sessions", c.backing))
}

// skipWrite reports whether a Commit may skip the backing store under
// SkipWriteWithin. It never skips a Commit that shortens the expiry.
func (c *CachedStore) skipWrite(token string, b []byte, expiry time.Time) bool {
	if c.known == nil {
		return false
	}
	k, ok := c.known.Get(token)
	if !ok || k.sum != maphash.Bytes(c.seed, b) {
		return false
	}
	moved := expiry.Sub(k.expiry)
	return moved >= 0 && moved < c.opts.SkipWriteWithin
}

func (c *CachedStore) remember(token string, b []byte, expiry time.Time) {
	if c.known != nil {
		c.known.Add(token, knownWrite{sum: maphash.Bytes(c.seed, b), expiry: expiry})
	}
}

func (c *CachedStore) forget(token string) {
	if c.known != nil {
		c.known.Remove(token)
	}
}

func (c *CachedStore) stripe(token string) *stripe {
	return &c.stripes[maphash.String(c.seed, token)%uint64(len(c.stripes))]
}

// opError wraps an error of the CachedStore's own, as DynamoStore's errors
// do: with the operation and, when the backing store is a DynamoStore, its
// table.
func (c *CachedStore) opError(op string, err error) error {
	if ds, ok := c.backing.(*DynamoStore); ok {
		return fmt.Errorf("dynamostore: cached %s in table %q: %w", op, ds.tableName, err)
	}
	return fmt.Errorf("dynamostore: cached %s: %w", op, err)
}

// findCtx, commitCtx and deleteCtx pass ctx to stores that take one.
func findCtx(ctx context.Context, s scs.Store, token string) ([]byte, bool, error) {
	if cs, ok := s.(scs.CtxStore); ok {
		return cs.FindCtx(ctx, token)
	}
	return s.Find(token)
}

func commitCtx(ctx context.Context, s scs.Store, token string, b []byte, expiry time.Time) error {
	if cs, ok := s.(scs.CtxStore); ok {
		return cs.CommitCtx(ctx, token, b, expiry)
	}
	return s.Commit(token, b, expiry)
}

func deleteCtx(ctx context.Context, s scs.Store, token string) error {
	if cs, ok := s.(scs.CtxStore); ok {
		return cs.DeleteCtx(ctx, token)
	}
	return s.Delete(token)
}

// memCache is the default cache layer: an LRU bounded in entries, from
// hashicorp/golang-lru, whose entries expire at their own time.
type memCache struct {
	lru *lru.Cache[string, memEntry]
	now func() time.Time
}

type memEntry struct {
	data  []byte
	until time.Time
}

func newMemCache(size int) *memCache {
	l, _ := lru.New[string, memEntry](size) // errors only for size <= 0
	return &memCache{lru: l, now: time.Now}
}

func (m *memCache) Find(token string) ([]byte, bool, error) {
	e, ok := m.lru.Get(token)
	if !ok || !m.now().Before(e.until) {
		return nil, false, nil
	}
	return e.data, true, nil
}

func (m *memCache) Commit(token string, b []byte, expiry time.Time) error {
	// No copy: like scs's memstore, the cache keeps the caller's slice; scs
	// encodes a new one for every Commit and never changes it afterwards.
	m.lru.Add(token, memEntry{data: b, until: expiry})
	return nil
}

func (m *memCache) Delete(token string) error {
	m.lru.Remove(token)
	return nil
}
