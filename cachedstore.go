package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/maypok86/otter/v2/stats"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// CachedStore is an scs session store that keeps a cache in front of another
// store, such as a DynamoStore, the way django-dynamodb-sessions'
// cached_dynamodb backend did. Reads are served from the cache for up to
// CacheOptions.MaxStale; writes and deletes go to the backing store and
// then to the cache, so the cache never holds data the backing store
// refused. Used from many goroutines it is linearizable for each token:
// once a Commit or Delete returns, every Find through it sees its effect,
// and with a SharedCache so does every Find through the CachedStores that
// share it. It is safe for concurrent use.
type CachedStore struct {
	backing   scs.Store
	cache     SharedCache
	namespace string // before each token in a SharedCache; see cacheKey
	hash      bool   // the backing store's Options.HashTokens; see cacheKey
	table     string // the backing TableStore's table, or ""
	opts      CacheOptions
	now       func() time.Time

	// The backing reads under way, by token, that hold the token's lease,
	// which Finds of the same lease share. The stripes' locks guard only
	// their maps.
	seed    maphash.Seed
	stripes [64]stripe

	// lookups counts hits and misses in stripes, so that parallel hits do
	// not contend for one counter's cache line (BenchmarkCachedHit).
	lookups              *stats.Counter
	skipped, cacheErrors atomic.Uint64
	metrics              cacheMetrics
}

// stripe holds the backing reads under way of one share of the tokens.
type stripe struct {
	mu    sync.Mutex
	fills map[string]*fill
}

// fill is one backing read, under the token's lease, that concurrent misses
// of the same lease share.
type fill struct {
	lease  uint64
	done   chan struct{}
	data   []byte
	found  bool
	err    error
	expiry time.Time
}

var (
	_ scs.Store            = (*CachedStore)(nil)
	_ scs.CtxStore         = (*CachedStore)(nil)
	_ scs.IterableStore    = (*CachedStore)(nil)
	_ scs.IterableCtxStore = (*CachedStore)(nil)
	_ CacheableStore       = (*DynamoStore)(nil)
	_ TableStore           = (*DynamoStore)(nil)
	_ TableStore           = (*CachedStore)(nil)
	_ OwnerStore           = (*DynamoStore)(nil)
	_ OwnerSessionStore    = (*DynamoStore)(nil)
	_ SharedCache          = (*memCache)(nil)
)

// NewCached returns a CachedStore in front of backing, with the defaults
// described at CacheOptions changed by optFns. It panics when backing is
// nil, as New does for a nil Client; what it cannot use in the options (a
// Cache that is not a SharedCache, a backing store that is not a
// CacheableStore) it logs once, here, and works without.
func NewCached(backing scs.Store, optFns ...func(*CacheOptions)) *CachedStore {
	if backing == nil {
		panic("dynamostore: NewCached: the backing store is nil; pass the DynamoStore that New returned")
	}
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
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	table := tableOf(backing)
	c := &CachedStore{backing: backing, table: table, opts: o, now: time.Now, seed: maphash.MakeSeed(),
		lookups: stats.NewCounter(), metrics: newCacheMetrics(o.MeterProvider, table)}
	if ts, ok := backing.(TableStore); ok {
		c.hash = ts.Options().HashTokens
	}
	switch cache := o.Cache.(type) {
	case SharedCache:
		c.cache = cache
		if ts, ok := backing.(TableStore); ok {
			// DynamoDB table names have no "/" and no "+".
			o := ts.Options()
			c.namespace = o.TableName + "/" + o.KeyPrefix
		}
		if n := cacheLayers(backing); n > 0 {
			// A cache in front of another one (through a MigratingStore,
			// say) keys its copies apart; a token has no "+".
			c.namespace = "+" + strconv.Itoa(n) + "/" + c.namespace
		}
	case nil:
	default:
		o.Logger.Error("dynamostore: CacheOptions.Cache is not a SharedCache, which a cache shared by several instances must be to serve no stale sessions; using the in-process cache instead (for Redis, use rediscache.New)",
			"cache", fmt.Sprintf("%T", cache))
	}
	if c.cache == nil {
		c.cache = newMemCache(o.MaxBytes, o.MaxEntries)
	}
	if _, ok := backing.(CacheableStore); !ok {
		o.Logger.Warn("dynamostore: the backing store is not a CacheableStore, so the CachedStore caches nothing; a wrapper around a DynamoStore must forward FindExpiryCtx and CommitStoredCtx",
			"backing", fmt.Sprintf("%T", backing))
	}
	for i := range c.stripes {
		c.stripes[i].fills = make(map[string]*fill)
	}
	return c
}

// Stats returns the counts so far.
func (c *CachedStore) Stats() CacheStats {
	lookups := c.lookups.Snapshot()
	return CacheStats{Hits: lookups.Hits, Misses: lookups.Misses, SkippedWrites: c.skipped.Load(),
		CacheErrors: c.cacheErrors.Load()}
}

// cacheError counts an error of the cache layer.
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
// store where they take one. Concurrent misses of one token share one
// backing read, as long as no Commit or Delete of the token began since
// the read did.
func (c *CachedStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	if token == "" {
		return nil, false, nil
	}
	key := c.cacheKey(token)
	lk, err := c.cache.Lookup(ctx, key, true)
	if err != nil {
		c.cacheError(ctx)
		lk = CacheLookup{}
	}
	if lk.Found {
		c.lookups.RecordHits(1)
		c.metrics.lookups.Add(ctx, 1, c.metrics.hit...)
		return lk.Entry.Data, true, nil
	}
	c.lookups.RecordMisses(1)
	c.metrics.lookups.Add(ctx, 1, c.metrics.miss...)

	st := c.stripe(token)
	if !lk.Granted {
		if lk.Lease != 0 {
			// Another miss holds the lease, which no write has withdrawn:
			// share its read if it is this process's.
			st.mu.Lock()
			f := st.fills[token]
			st.mu.Unlock()
			if f != nil && f.lease == lk.Lease {
				select {
				case <-f.done:
				case <-ctx.Done():
					return nil, false, c.opError("find", ctx.Err())
				}
				if f.err == nil || !isContextError(f.err) {
					return f.data, f.found, f.err
				}
				// The read ended with its own caller's context, not ours:
				// read for ourselves rather than fail.
			}
		}
		b, _, found, err := c.findBacking(ctx, token)
		return b, found, err
	}

	f := &fill{lease: lk.Lease, done: make(chan struct{})}
	start := c.now() // a copy's MaxStale counts from before the read
	st.mu.Lock()
	st.fills[token] = f
	st.mu.Unlock()
	var entry *CacheEntry
	var until time.Time
	// However the read ends, a panic in the backing store included, the
	// sharers are released and the lease ends, so the token is not stuck.
	defer func() {
		st.mu.Lock()
		if st.fills[token] == f {
			delete(st.fills, token)
		}
		st.mu.Unlock()
		select {
		case <-f.done:
		default:
			f.err = errors.New("dynamostore: cached find: the backing store's Find panicked")
			close(f.done)
		}
		if err := c.cache.Fill(context.WithoutCancel(ctx), key, lk.Lease, entry, until); err != nil {
			c.cacheError(ctx)
		}
	}()
	f.data, f.expiry, f.found, f.err = c.findBacking(ctx, token)
	close(f.done) // the sharers need not wait for the cache write
	until = c.until(start, f.expiry)
	if f.err == nil && f.found && !f.expiry.IsZero() && until.After(c.now()) {
		entry = &CacheEntry{Data: f.data, Expiry: f.expiry}
	}
	return f.data, f.found, f.err
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// findBacking reads the backing store, with the session's expiry when the
// backing store can tell it.
func (c *CachedStore) findBacking(ctx context.Context, token string) ([]byte, time.Time, bool, error) {
	if cs, ok := c.backing.(CacheableStore); ok {
		return cs.FindExpiryCtx(ctx, token)
	}
	b, found, err := findCtx(ctx, c.backing, token)
	return b, time.Time{}, found, err
}

// until returns until when a copy of a session that expires at expiry
// (zero for unknown), read or written from start on, may be cached:
// MaxStale after start, or to its expiry if that comes first, to the
// millisecond, as a DynamoStore keeps it, so that a cached copy and the
// backing store agree on when the session ends.
func (c *CachedStore) until(start, expiry time.Time) time.Time {
	until := start.Add(c.opts.MaxStale)
	// A zero expiry is as past as any: a Commit with one caches nothing,
	// and a read that cannot tell the expiry fills nothing.
	if expiry = expiry.Truncate(time.Millisecond); expiry.Before(until) {
		until = expiry
	}
	return until
}

// cacheKey returns the key of token's copy in the cache layer: the token
// as the backing store keeps it (storedKey). That is the token itself,
// and its hash when the backing DynamoStore has Options.HashTokens: the
// owner methods name the sessions they delete by the key as stored, a
// hash no cache could turn back into the token, a shared cache then holds
// no usable cookie either, and its keys stay the same when the
// application moves to scs's HashTokenInStore.
func (c *CachedStore) cacheKey(token string) string {
	if c.hash {
		token = sessionitem.HashToken(token)
	}
	return c.storedKey(token)
}

// storedKey returns the key in the cache layer of the session that the
// backing store keeps under stored: stored itself in the CachedStore's own
// in-process cache, and in a SharedCache stored behind the backing
// DynamoStore's table and KeyPrefix, so that applications fenced apart in
// DynamoDB stay apart in a cache they share.
func (c *CachedStore) storedKey(stored string) string {
	if c.namespace == "" {
		return stored
	}
	return c.namespace + stored
}

// Commit writes the session to the backing store and then to the cache. It
// calls CommitCtx with context.Background().
func (c *CachedStore) Commit(token string, b []byte, expiry time.Time) error {
	return c.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is like Commit with a context. The cache keeps a copy only of
// what the backing store stored: none when the backing write fails, none
// when the token is revoked (see Options.RevocationPeriod), and none when
// another Commit or Delete of the token overlapped this one. With a
// SharedCache it returns an error, and writes nothing, when the cache
// cannot be told of the write.
func (c *CachedStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error) {
	key := c.cacheKey(token)
	if c.skipWrite(ctx, key, b, expiry) {
		c.skipped.Add(1)
		c.metrics.skipped.Add(ctx, 1, c.metrics.table...)
		return nil
	}
	write, err := c.beginWrite(ctx, key)
	if err != nil {
		return c.opError("commit: cache", err)
	}
	var entry *CacheEntry
	until := c.until(c.now(), expiry)
	defer func() {
		// Even when ctx is done: the write is over.
		if err := c.cache.EndWrite(context.WithoutCancel(ctx), key, write, entry, until); err != nil {
			c.cacheError(ctx)
		}
	}()
	cs, ok := c.backing.(CacheableStore)
	if !ok {
		// It cannot say whether it stored the session (a wrapper around
		// a DynamoStore whose token was revoked would not): no copy.
		return commitCtx(ctx, c.backing, token, b, expiry)
	}
	stored, err := cs.CommitStoredCtx(ctx, token, b, expiry)
	if err == nil && stored && until.After(c.now()) {
		entry = &CacheEntry{Data: b, Expiry: expiry.Truncate(time.Millisecond)}
	}
	return err
}

// CommitNewCtx stores the session through the backing store, a
// CommitNewStore such as a DynamoStore, only where it holds neither a live
// session nor a revocation under token, and caches a copy of what it
// stored, as CommitCtx does. It returns an error wrapping ErrClientMethod
// when the backing store is not a CommitNewStore.
func (c *CachedStore) CommitNewCtx(ctx context.Context, token string, b []byte, expiry time.Time) (stored bool, err error) {
	cs, ok := c.backing.(CommitNewStore)
	if !ok {
		return false, c.opError("commit new", fmt.Errorf("%w: the backing store, a %T, has no CommitNewCtx method", ErrClientMethod, c.backing))
	}
	key := c.cacheKey(token)
	write, err := c.beginWrite(ctx, key)
	if err != nil {
		return false, c.opError("commit new: cache", err)
	}
	var entry *CacheEntry
	until := c.until(c.now(), expiry)
	defer func() {
		// Even when ctx is done: the write is over.
		if err := c.cache.EndWrite(context.WithoutCancel(ctx), key, write, entry, until); err != nil {
			c.cacheError(ctx)
		}
	}()
	stored, err = cs.CommitNewCtx(ctx, token, b, expiry)
	if err == nil && stored && until.After(c.now()) {
		entry = &CacheEntry{Data: b, Expiry: expiry.Truncate(time.Millisecond)}
	}
	return stored, err
}

// Delete removes the session from the backing store and the cache. It calls
// DeleteCtx with context.Background().
func (c *CachedStore) Delete(token string) error {
	return c.DeleteCtx(context.Background(), token)
}

// DeleteCtx is like Delete with a context. Once it returns, no Find through
// this CachedStore, or through another that shares its SharedCache,
// returns the deleted session, even one whose backing read began before
// the Delete. With a SharedCache it returns an error, and deletes nothing,
// when the cache cannot be told of the delete.
func (c *CachedStore) DeleteCtx(ctx context.Context, token string) error {
	key := c.cacheKey(token)
	write, err := c.beginWrite(ctx, key)
	if err != nil {
		return c.opError("delete: cache", err)
	}
	defer c.endWrite(ctx, key, write)
	return deleteCtx(ctx, c.backing, token)
}

// beginWrite begins a write of the copy with key in the cache layer,
// counting a failure.
func (c *CachedStore) beginWrite(ctx context.Context, key string) (uint64, error) {
	write, err := c.cache.BeginWrite(ctx, key)
	if err != nil {
		c.cacheError(ctx)
	}
	return write, err
}

// endWrite ends a delete of the copy with key, even when ctx is done.
func (c *CachedStore) endWrite(ctx context.Context, key string, write uint64) {
	if err := c.cache.EndWrite(context.WithoutCancel(ctx), key, write, nil, time.Time{}); err != nil {
		c.cacheError(ctx)
	}
}

// DeleteOwner on the CachedStore deletes through the backing store, an
// OwnerStore such as a DynamoStore, and drops the cached copies, so no
// Find through this CachedStore, or through another that shares its
// SharedCache, returns them afterwards. Other CachedStores in front of the
// same table with caches of their own keep serving their copies for up to
// MaxStale, but no Commit through them stores a deleted session again. See
// (*DynamoStore).DeleteOwner for what it deletes and costs. It returns an
// error wrapping ErrClientMethod when the backing store is not an
// OwnerStore.
func (c *CachedStore) DeleteOwner(ctx context.Context, owner string) (deleted int, err error) {
	owners, ok := c.backing.(OwnerStore)
	if !ok {
		return 0, c.opError("delete owner", fmt.Errorf("%w: backing store %T is not an OwnerStore (it has no DeleteOwnerFunc method)", ErrClientMethod, c.backing))
	}
	return owners.DeleteOwnerFunc(ctx, owner, c.dropAround("delete owner"))
}

// dropAround returns the function that an OwnerStore's or an
// OwnerSessionStore's deletes for op call around each delete: it drops
// the token's cached copy as Delete does, and keeps it uncached while the
// delete is under way.
func (c *CachedStore) dropAround(op string) func(ctx context.Context, token string, del func(context.Context) error) error {
	return func(ctx context.Context, token string, del func(context.Context) error) error {
		// token is as the backing store keeps it: hashed already under
		// its Options.HashTokens.
		key := c.storedKey(token)
		write, err := c.beginWrite(ctx, key)
		if err != nil {
			return c.opError(op+": cache", err)
		}
		defer c.endWrite(ctx, key, write)
		return del(ctx)
	}
}

// Options returns the backing store's options where it is a TableStore
// (a DynamoStore, or a MigratingStore in front of one), and zero Options
// otherwise. It makes the CachedStore a TableStore, so that what wraps it
// sees the table behind it: Import refuses to import from a CachedStore
// on its own table, and a MigratingStore whose new store is a CachedStore
// names and keys sessions as the DynamoStore behind it does.
func (c *CachedStore) Options() Options {
	if ts, ok := c.backing.(TableStore); ok {
		return ts.Options()
	}
	return Options{}
}

// ownerSessions returns the backing store as an OwnerSessionStore, or an
// error for op wrapping ErrClientMethod.
func (c *CachedStore) ownerSessions(op string) (OwnerSessionStore, error) {
	owners, ok := c.backing.(OwnerSessionStore)
	if !ok {
		return nil, c.opError(op, fmt.Errorf("%w: backing store %T is not an OwnerSessionStore (it has no OwnerSessions method)", ErrClientMethod, c.backing))
	}
	return owners, nil
}

// OwnerSessions lists the owner's live sessions from the backing store, an
// OwnerSessionStore such as a DynamoStore, bypassing the cache: see
// (*DynamoStore).OwnerSessions. It returns an error wrapping
// ErrClientMethod when the backing store is not an OwnerSessionStore.
func (c *CachedStore) OwnerSessions(ctx context.Context, owner string) ([]OwnerSession, error) {
	owners, err := c.ownerSessions("owner sessions")
	if err != nil {
		return nil, err
	}
	return owners.OwnerSessions(ctx, owner)
}

// CurrentSessionID returns the ID of the request's own session, as the
// backing store's OwnerSessions lists it: see
// (*DynamoStore).CurrentSessionID. It returns "" when the backing store
// is not an OwnerSessionStore.
func (c *CachedStore) CurrentSessionID(ctx context.Context, sm *scs.SessionManager) string {
	owners, ok := c.backing.(OwnerSessionStore)
	if !ok {
		return ""
	}
	return owners.CurrentSessionID(ctx, sm)
}

// DeleteOwnerSession revokes the owner's session with ID id through the
// backing store, an OwnerSessionStore such as a DynamoStore, and drops its
// cached copy, as DeleteOwner does: see (*DynamoStore).DeleteOwnerSession.
// It returns an error wrapping ErrClientMethod when the backing store is
// not an OwnerSessionStore.
func (c *CachedStore) DeleteOwnerSession(ctx context.Context, owner, id string) (bool, error) {
	owners, err := c.ownerSessions("delete owner session")
	if err != nil {
		return false, err
	}
	return owners.DeleteOwnerSessionFunc(ctx, owner, id, c.dropAround("delete owner session"))
}

// DeleteOwnerExcept revokes every live session of the owner but the one
// with ID keepID through the backing store, an OwnerSessionStore such as a
// DynamoStore, and drops their cached copies, as DeleteOwner does: see
// (*DynamoStore).DeleteOwnerExcept. It returns an error wrapping
// ErrClientMethod when the backing store is not an OwnerSessionStore.
func (c *CachedStore) DeleteOwnerExcept(ctx context.Context, owner, keepID string) (int, error) {
	owners, err := c.ownerSessions("delete owner except")
	if err != nil {
		return 0, err
	}
	return owners.DeleteOwnerExceptFunc(ctx, owner, keepID, c.dropAround("delete owner except"))
}

// LimitOwner keeps the keep most recently written live sessions of the
// owner and revokes the rest through the backing store, an
// OwnerSessionStore such as a DynamoStore, and drops their cached copies,
// as DeleteOwner does: see (*DynamoStore).LimitOwner. It returns an error
// wrapping ErrClientMethod when the backing store is not an
// OwnerSessionStore.
func (c *CachedStore) LimitOwner(ctx context.Context, owner string, keep int) (int, error) {
	owners, err := c.ownerSessions("limit owner")
	if err != nil {
		return 0, err
	}
	return owners.LimitOwnerFunc(ctx, owner, keep, c.dropAround("limit owner"))
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
// SkipWriteWithin: the cache holds a fresh copy with the same data, whose
// expiry is at most SkipWriteWithin before this one. It never skips a
// Commit that shortens the expiry.
func (c *CachedStore) skipWrite(ctx context.Context, key string, b []byte, expiry time.Time) bool {
	if c.opts.SkipWriteWithin <= 0 {
		return false
	}
	lk, err := c.cache.Lookup(ctx, key, false)
	if err != nil {
		c.cacheError(ctx)
		return false
	}
	if !lk.Found || !bytes.Equal(lk.Entry.Data, b) {
		return false
	}
	moved := expiry.Truncate(time.Millisecond).Sub(lk.Entry.Expiry)
	return moved >= 0 && moved < c.opts.SkipWriteWithin
}

func (c *CachedStore) stripe(token string) *stripe {
	return &c.stripes[maphash.String(c.seed, token)%uint64(len(c.stripes))]
}

// opError wraps an error of the CachedStore's own, as DynamoStore's errors
// do: with the operation and, when the backing store is a TableStore, its
// table.
func (c *CachedStore) opError(op string, err error) error {
	if c.table != "" {
		return fmt.Errorf("dynamostore: cached %s in table %q: %w", op, c.table, err)
	}
	return fmt.Errorf("dynamostore: cached %s: %w", op, err)
}

// tableOf returns the table of a backing store that is a TableStore, or "".
func tableOf(backing scs.Store) string {
	if ts, ok := backing.(TableStore); ok {
		return ts.Options().TableName
	}
	return ""
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

// layered is a store that counts the CachedStores its sessions pass
// through: a CachedStore, and a MigratingStore whose stores are ones.
type layered interface {
	cacheLayers() int
}

// cacheLayers returns how many CachedStores s is or holds in front of the
// sessions (0 for a DynamoStore), so that a CachedStore in front of
// another one keys its copies in a SharedCache apart from the inner one's.
func cacheLayers(s scs.Store) int {
	if l, ok := s.(layered); ok {
		return l.cacheLayers()
	}
	return 0
}

func (c *CachedStore) cacheLayers() int { return 1 + cacheLayers(c.backing) }
