package dynamostore

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"
)

// BenchmarkCacheLibraries compares candidate libraries for the CachedStore's
// in-process cache on its own access pattern: 10,000 sessions of 1 KB,
// parallel reads with 1 write in 10, over 20,000 distinct tokens so that
// eviction runs.
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
	// The CachedStore's own layer: golang-lru plus an expiry check, which
	// reads the clock.
	b.Run("memCache", func(b *testing.B) {
		m := newMemCache(size)
		mix(b, func(k string) { m.Find(k) }, func(k string) { m.Commit(k, entry.data, entry.until) })
	})
	b.Run("golang-lru", func(b *testing.B) {
		c, _ := lru.New[string, memEntry](size)
		mix(b, func(k string) { c.Get(k) }, func(k string) { c.Add(k, entry) })
	})
	b.Run("otter", func(b *testing.B) {
		c := otter.Must(&otter.Options[string, memEntry]{MaximumSize: size})
		mix(b, func(k string) { c.GetIfPresent(k) }, func(k string) { c.Set(k, entry) })
	})
}
