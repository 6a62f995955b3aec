package dynamostore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"
	"github.com/maypok86/otter/v2"
)

// BenchmarkCacheLibraries measures the library of the CachedStore's
// in-process cache, otter, on the CachedStore's access pattern, alone and
// as the CachedStore's layer: 10,000 sessions of 1 KB, parallel reads with
// 1 write in 10, over 20,000 distinct tokens so that eviction runs.
func BenchmarkCacheLibraries(b *testing.B) {
	const size, tokens = 10_000, 20_000
	keys := make([]string, tokens)
	for i := range keys {
		keys[i] = "token-" + strconv.Itoa(i)
	}
	entry := memEntry{data: make([]byte, 1024), until: time.Now().Add(time.Hour)}

	// mix fills the cache with add, then runs the pattern with get and add.
	mix := func(b *testing.B, get, add func(key string)) {
		for _, k := range keys[:size] {
			add(k)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 1))
			for pb.Next() {
				k := keys[r.IntN(tokens)]
				if r.IntN(10) == 0 {
					add(k)
				} else {
					get(k)
				}
			}
		})
	}
	// The CachedStore's own layer: otter v2 bounded in bytes, plus an expiry
	// check, which reads the clock.
	b.Run("memCache", func(b *testing.B) {
		m := newMemCache(defaultMaxBytes, size)
		ctx := context.Background()
		mix(b, func(k string) { m.Lookup(ctx, k, false) }, func(k string) {
			m.BeginWrite(ctx, k)
			m.EndWrite(ctx, k, 0, &CacheEntry{Data: entry.data, Expiry: entry.until}, entry.until)
		})
	})
	b.Run("otter", func(b *testing.B) {
		c := otter.Must(&otter.Options[string, memEntry]{MaximumSize: size})
		mix(b, func(k string) { c.GetIfPresent(k) }, func(k string) { c.Set(k, entry) })
	})
}

// BenchmarkCachedHit is a cache hit beside scs memstore's Find, in parallel
// so that lock contention shows, with the steps in between: otter's lookup
// alone, then with the expiry check (the in-process cache layer), then that
// and one shared atomic hit counter, then the whole CachedStore.Find.
func BenchmarkCachedHit(b *testing.B) {
	data := bytes.Repeat([]byte{'d'}, 1024)
	expiry := time.Now().Add(time.Hour)
	mem := memstore.NewWithCleanupInterval(0)
	// Copies stay fresh for the whole run.
	c := NewCached(newMemBacking(), func(o *CacheOptions) { o.MaxStale = time.Hour })
	layer := c.cache.(*memCache)
	// Many sessions, as on a server: goroutines rarely want the same one.
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("token-%04d", i)
		mem.Commit(tokens[i], data, expiry)
		c.Commit(tokens[i], data, expiry)
	}
	for _, bc := range []struct {
		name string
		s    finder
	}{
		{"memstore", mem},
		{"otter", otterLookup{layer.c}},
		{"layer", layerFind{layer}},
		{"layer+shared-counter", sharedCounter{layerFind{layer}, new(atomic.Uint64)}},
		{"cached", c},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(397))
				for pb.Next() {
					i++
					if _, found, _ := bc.s.Find(tokens[i%len(tokens)]); !found {
						b.Fatal("not found")
					}
				}
			})
		})
	}
}

// BenchmarkCachedMiss is a cache miss beside the bare DynamoStore's Find,
// interleaved.
func BenchmarkCachedMiss(b *testing.B) {
	s, _ := benchStore(b)
	c := NewCached(s)
	if err := s.Commit("token", bytes.Repeat([]byte{'d'}, 1024), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	benchPair(b, func() error {
		_, _, err := s.Find("token")
		return err
	}, func() error {
		ctx := context.Background()
		c.cache.BeginWrite(ctx, "token")
		c.cache.EndWrite(ctx, "token", 0, nil, time.Time{})
		_, _, err := c.Find("token")
		return err
	})
}

// sharedCounter is the cache layer with every hit counted on one atomic
// counter, as the CachedStore counted them before it took otter's striped
// one.
type sharedCounter struct {
	layerFind
	hits *atomic.Uint64
}

func (s sharedCounter) Find(token string) ([]byte, bool, error) {
	b, found, err := s.layerFind.Find(token)
	if found {
		s.hits.Add(1)
	}
	return b, found, err
}

// otterLookup is otter's lookup alone, as an scs.Store's Find.
type otterLookup struct {
	c *otter.Cache[string, memEntry]
}

func (o otterLookup) Find(token string) ([]byte, bool, error) {
	e, ok := o.c.GetIfPresent(token)
	return e.data, ok, nil
}

// finder is what BenchmarkCachedHit compares.
type finder interface {
	Find(token string) ([]byte, bool, error)
}

// layerFind is the in-process cache layer's lookup of a hit.
type layerFind struct{ m *memCache }

func (l layerFind) Find(token string) ([]byte, bool, error) {
	lk, err := l.m.Lookup(context.Background(), token, false)
	return lk.Entry.Data, lk.Found, err
}
