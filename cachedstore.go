package dynamostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// CacheOptions configures a CachedStore. NewCached fills in the defaults
// before it calls the caller's option functions.
type CacheOptions struct {
	// Cache is the cache layer. Nil, the default, means a bounded in-process
	// cache (otter's, which evicts the sessions least likely to be read
	// again). A cache shared by several application instances (scs's
	// goredisstore on Redis, say) makes a Delete on one instance visible to
	// all of them at once; see the README on running more than one instance.
	Cache scs.Store

	// MaxBytes bounds the in-process cache by the memory it holds: each
	// session weighs its token and its data (the capacity of the slice,
	// which may exceed its length), plus 200 bytes for the entry itself. A
	// session of more than a quarter of MaxBytes is not cached.
	// The default is 64 MiB; zero or less takes the default. It does not
	// apply to a Cache of your own.
	MaxBytes int64

	// MaxEntries bounds the in-process cache in sessions: each session
	// weighs at least MaxBytes / MaxEntries, so the cache never holds more
	// than MaxEntries. With the defaults, that is 6.7 KB, and sessions
	// smaller than that are bounded by count rather than bytes. It also
	// bounds what SkipWriteWithin remembers. The default is 10,000; zero or
	// less takes the default.
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
	// expire up to SkipWriteWithin early. Zero, the default, never skips,
	// and neither does a negative value.
	SkipWriteWithin time.Duration

	// MeterProvider makes the CachedStore's OpenTelemetry instruments:
	// lookups by result (hit or miss), skipped writes, and errors of the
	// cache layer, which cost a miss but are never the caller's. They
	// carry the table's name when the backing store is a DynamoStore. The
	// default is nil: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// The defaults of CacheOptions.
const (
	defaultMaxBytes   = 64 << 20
	defaultMaxEntries = 10_000
	defaultMaxStale   = 10 * time.Second
)

// entryOverhead is what an in-process cache entry costs beyond its token
// and data, rounded up from TestCachedBounded's measure (about 135 bytes).
const entryOverhead = 200

// CacheStats counts what a CachedStore did since it was created.
type CacheStats struct {
	Hits          uint64 // Finds answered by the cache
	Misses        uint64 // Finds that read the backing store
	SkippedWrites uint64 // Commits that SkipWriteWithin kept from the backing store
	CacheErrors   uint64 // errors of the cache layer, which cost a miss and never reach the caller
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
	// the read in flight stale, so its result is not cached. The stripes'
	// locks guard only their maps; each token's cache writes are ordered by
	// a lock of the token's own, so a slow cache delays only that token.
	seed    maphash.Seed
	stripes [64]stripe

	// known remembers, per token, a hash of the data and the expiry the
	// backing store holds, for SkipWriteWithin.
	known *otter.Cache[string, knownWrite]

	// lookups counts hits and misses in stripes, so that parallel hits do
	// not contend for one counter's cache line (BenchmarkCachedHit).
	lookups              *stats.Counter
	skipped, cacheErrors atomic.Uint64
	metrics              cacheMetrics
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

// stripe holds the state of the tokens whose misses, Commits or Deletes are
// under way, of one share of the tokens.
type stripe struct {
	mu     sync.Mutex
	tokens map[string]*tokenState
}

// tokenState is one token's, while calls on it are under way.
type tokenState struct {
	refs int   // calls using this state; guarded by the stripe's mutex
	fill *fill // the backing read in flight; guarded by the stripe's mutex

	// order is the token's lock, held (a value sent) while a call writes
	// the token's cache entry, so that a Commit or Delete is not overtaken
	// by a fill's older data.
	order chan struct{}
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

// hold returns the token's state, with a reference the caller gives back
// with letGo. mark, when true, makes a fill in flight stale, so that its
// result is not cached, and lets the next miss start a fill of its own.
func (st *stripe) hold(token string, mark bool) *tokenState {
	st.mu.Lock()
	defer st.mu.Unlock()
	ts := st.tokens[token]
	if ts == nil {
		ts = &tokenState{order: make(chan struct{}, 1)}
		st.tokens[token] = ts
	}
	ts.refs++
	if mark && ts.fill != nil {
		ts.fill.stale = true
		ts.fill = nil
	}
	return ts
}

func (st *stripe) letGo(token string, ts *tokenState) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if ts.refs--; ts.refs == 0 {
		delete(st.tokens, token)
	}
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
	o := CacheOptions{MaxBytes: defaultMaxBytes, MaxEntries: defaultMaxEntries, MaxStale: defaultMaxStale}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = defaultMaxEntries
	}
	if o.MaxStale <= 0 {
		o.MaxStale = defaultMaxStale
	}
	c := &CachedStore{backing: backing, cache: o.Cache, opts: o, now: time.Now, seed: maphash.MakeSeed(),
		lookups: stats.NewCounter(), metrics: newCacheMetrics(o.MeterProvider, backing)}
	if c.cache == nil {
		c.cache = newMemCache(o.MaxBytes, o.MaxEntries)
	}
	if o.SkipWriteWithin > 0 {
		c.known = otter.Must(&otter.Options[string, knownWrite]{MaximumSize: o.MaxEntries})
	}
	for i := range c.stripes {
		c.stripes[i].tokens = make(map[string]*tokenState)
	}
	return c
}

// Stats returns the counts so far.
func (c *CachedStore) Stats() CacheStats {
	lookups := c.lookups.Snapshot()
	return CacheStats{Hits: lookups.Hits, Misses: lookups.Misses, SkippedWrites: c.skipped.Load(),
		CacheErrors: c.cacheErrors.Load()}
}

// cacheError counts an error of the cache layer, which the caller never sees.
func (c *CachedStore) cacheError(ctx context.Context) {
	c.cacheErrors.Add(1)
	c.metrics.errors.Add(ctx, 1, c.metrics.table...)
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
		c.lookups.RecordHits(1)
		c.metrics.lookups.Add(ctx, 1, c.metrics.hit...)
		return b, true, nil
	}
	if err != nil {
		c.cacheError(ctx)
	}
	c.lookups.RecordMisses(1)
	c.metrics.lookups.Add(ctx, 1, c.metrics.miss...)

	st := c.stripe(token)
	ts := st.hold(token, false)
	defer st.letGo(token, ts)
	st.mu.Lock()
	if f := ts.fill; f != nil {
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
	ts.fill = f
	st.mu.Unlock()

	f.data, f.expiry, f.found, f.err = c.findBacking(ctx, token)
	close(f.done) // the waiters need not wait for the cache write

	// Cache what was read, unless a Commit or Delete of the token came
	// since. Holding the token's lock, so that one that comes now writes
	// the cache after this.
	select {
	case ts.order <- struct{}{}:
	case <-ctx.Done():
		st.mu.Lock()
		if ts.fill == f {
			ts.fill = nil
		}
		st.mu.Unlock()
		return f.data, f.found, f.err
	}
	st.mu.Lock()
	stale := f.stale
	if ts.fill == f {
		ts.fill = nil
	}
	st.mu.Unlock()
	if !stale && f.err == nil && f.found {
		if !f.expiry.IsZero() {
			c.remember(token, f.data, f.expiry)
		}
		c.cacheCommit(ctx, token, f.data, f.expiry)
	}
	<-ts.order
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
			c.cacheError(ctx)
		}
		return
	}
	if err := commitCtx(ctx, c.cache, token, data, until); err != nil {
		c.cacheError(ctx)
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
	ts := st.hold(token, true)
	defer st.letGo(token, ts)
	ts.order <- struct{}{}
	defer func() { <-ts.order }()
	if err != nil {
		// Even when ctx is what failed: a shared cache must not keep the
		// old copy.
		if err := deleteCtx(context.WithoutCancel(ctx), c.cache, token); err != nil {
			c.cacheError(ctx)
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
	ts := st.hold(token, true)
	defer st.letGo(token, ts)
	ts.order <- struct{}{}
	defer func() { <-ts.order }()
	c.forget(token)
	err := deleteCtx(context.WithoutCancel(ctx), c.cache, token)
	if err != nil {
		c.cacheError(ctx)
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
	k, ok := c.known.GetIfPresent(token)
	if !ok || k.sum != maphash.Bytes(c.seed, b) {
		return false
	}
	moved := expiry.Sub(k.expiry)
	return moved >= 0 && moved < c.opts.SkipWriteWithin
}

func (c *CachedStore) remember(token string, b []byte, expiry time.Time) {
	if c.known != nil {
		c.known.Set(token, knownWrite{sum: maphash.Bytes(c.seed, b), expiry: expiry})
	}
}

func (c *CachedStore) forget(token string) {
	if c.known != nil {
		c.known.Invalidate(token)
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

// memCache is the default cache layer: otter's cache, bounded in bytes,
// whose entries expire at their own time.
type memCache struct {
	c        *otter.Cache[string, memEntry]
	maxEntry int // the largest session it keeps
	now      func() time.Time
}

type memEntry struct {
	data  []byte
	until time.Time
}

// newMemCache returns a memCache of at most maxBytes, by the weight
// described at CacheOptions.MaxBytes, and at most maxEntries entries.
func newMemCache(maxBytes int64, maxEntries int) *memCache {
	minWeight := (maxBytes + int64(maxEntries) - 1) / int64(maxEntries) // rounded up: at most maxEntries fit
	maxEntry := maxBytes / 4
	return &memCache{
		c: otter.Must(&otter.Options[string, memEntry]{
			MaximumWeight: uint64(maxBytes),
			Weigher: func(token string, e memEntry) uint32 {
				return uint32(min(max(int64(len(token)+cap(e.data))+entryOverhead, minWeight), math.MaxUint32))
			},
		}),
		maxEntry: int(min(maxEntry, math.MaxInt32)),
		now:      time.Now,
	}
}

func (m *memCache) Find(token string) ([]byte, bool, error) {
	e, ok := m.c.GetIfPresent(token)
	if !ok || !m.now().Before(e.until) {
		return nil, false, nil
	}
	return e.data, true, nil
}

func (m *memCache) Commit(token string, b []byte, expiry time.Time) error {
	if len(token)+cap(b)+entryOverhead > m.maxEntry {
		// Too large to keep: drop the older copy too.
		m.c.Invalidate(token)
		return nil
	}
	// No copy: like scs's memstore, the cache keeps the caller's slice; scs
	// encodes a new one for every Commit and never changes it afterwards.
	m.c.Set(token, memEntry{data: b, until: expiry})
	return nil
}

func (m *memCache) Delete(token string) error {
	m.c.Invalidate(token)
	return nil
}
