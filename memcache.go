package dynamostore

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// entryOverhead is what an in-process cache entry costs beyond its token
// and data, rounded up from TestCachedBounded's measure (about 135 bytes).
const entryOverhead = 200

// memCache is the default cache layer: otter's cache, bounded in bytes,
// whose entries expire at their own time, and the leases and writes under
// way of a SharedCache, kept in memory.
type memCache struct {
	c        *otter.Cache[string, memEntry]
	maxEntry int // the largest session it keeps
	now      func() time.Time

	seed    maphash.Seed
	leases  atomic.Uint64 // the last lease granted
	stripes [64]memStripe
}

type memEntry struct {
	data          []byte
	expiry, until time.Time
}

// memStripe holds the leases and writes under way of one share of the
// tokens; its lock also orders their cache writes.
type memStripe struct {
	mu     sync.Mutex
	tokens map[string]*memToken
}

// memToken is a token's state while it has a lease or a write under way.
type memToken struct {
	lease   uint64 // the lease granted, or 0
	pending int    // writes under way
	writes  int    // writes begun since pending was last 0
}

// newMemCache returns a memCache of at most maxBytes, by the weight
// described at CacheOptions.MaxBytes, and at most maxEntries entries.
func newMemCache(maxBytes int64, maxEntries int) *memCache {
	minWeight := (maxBytes + int64(maxEntries) - 1) / int64(maxEntries) // rounded up: at most maxEntries fit
	maxEntry := maxBytes / 4
	m := &memCache{
		c: otter.Must(&otter.Options[string, memEntry]{
			MaximumWeight: uint64(maxBytes),
			Weigher: func(token string, e memEntry) uint32 {
				return uint32(min(max(int64(len(token)+cap(e.data))+entryOverhead, minWeight), math.MaxUint32))
			},
		}),
		maxEntry: int(min(maxEntry, math.MaxInt32)),
		now:      time.Now,
		seed:     maphash.MakeSeed(),
	}
	for i := range m.stripes {
		m.stripes[i].tokens = make(map[string]*memToken)
	}
	return m
}

func (m *memCache) stripe(token string) *memStripe {
	return &m.stripes[maphash.String(m.seed, token)%uint64(len(m.stripes))]
}

func (m *memCache) Lookup(_ context.Context, token string, lease bool) (CacheLookup, error) {
	if e, ok := m.c.GetIfPresent(token); ok && m.now().Before(e.until) {
		return CacheLookup{Entry: CacheEntry{Data: e.data, Expiry: e.expiry}, Found: true}, nil
	}
	if !lease {
		return CacheLookup{}, nil
	}
	st := m.stripe(token)
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tokens[token]
	switch {
	case t == nil:
		t = &memToken{}
		st.tokens[token] = t
	case t.pending > 0:
		return CacheLookup{}, nil
	case t.lease != 0:
		return CacheLookup{Lease: t.lease}, nil
	}
	t.lease = m.leases.Add(1)
	return CacheLookup{Lease: t.lease, Granted: true}, nil
}

func (m *memCache) Fill(_ context.Context, token string, lease uint64, entry *CacheEntry, until time.Time) error {
	st := m.stripe(token)
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tokens[token]
	if t == nil || t.lease != lease {
		return nil // withdrawn by a write
	}
	t.lease = 0
	if t.pending == 0 {
		delete(st.tokens, token)
	}
	if entry != nil {
		m.set(token, entry, until)
	}
	return nil
}

func (m *memCache) BeginWrite(_ context.Context, token string) (uint64, error) {
	st := m.stripe(token)
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tokens[token]
	if t == nil {
		t = &memToken{}
		st.tokens[token] = t
	}
	if t.pending == 0 {
		t.writes = 0
	}
	t.pending++
	t.writes++
	t.lease = 0
	m.c.Invalidate(token)
	return 0, nil
}

func (m *memCache) EndWrite(_ context.Context, token string, _ uint64, entry *CacheEntry, until time.Time) error {
	st := m.stripe(token)
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tokens[token]
	if t == nil || t.pending == 0 {
		return errors.New("EndWrite without BeginWrite")
	}
	if t.pending--; t.pending > 0 {
		return nil
	}
	delete(st.tokens, token)
	if entry != nil && t.writes == 1 {
		m.set(token, entry, until)
	}
	return nil
}

// Find, Commit and Delete make memCache an scs.Store, as SharedCache
// asks; a Commit is a write that begins and ends at once.
func (m *memCache) Find(token string) ([]byte, bool, error) {
	lk, err := m.Lookup(context.Background(), token, false)
	return lk.Entry.Data, lk.Found, err
}

func (m *memCache) Commit(token string, b []byte, expiry time.Time) error {
	ctx := context.Background()
	m.BeginWrite(ctx, token)
	return m.EndWrite(ctx, token, 0, &CacheEntry{Data: b, Expiry: expiry}, expiry)
}

func (m *memCache) Delete(token string) error {
	ctx := context.Background()
	m.BeginWrite(ctx, token)
	return m.EndWrite(ctx, token, 0, nil, time.Time{})
}

// set caches entry until until, unless it is too large to keep; called
// with the token's stripe locked.
func (m *memCache) set(token string, entry *CacheEntry, until time.Time) {
	if len(token)+cap(entry.Data)+entryOverhead > m.maxEntry {
		m.c.Invalidate(token)
		return
	}
	// No copy: like scs's memstore, the cache keeps the caller's slice; scs
	// encodes a new one for every Commit and never changes it afterwards.
	m.c.Set(token, memEntry{data: entry.Data, expiry: entry.Expiry, until: until})
}
