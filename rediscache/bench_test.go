package rediscache

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"

	"github.com/dynamostore/dynamostore"
)

// BenchmarkRedis compares a CachedStore on rediscache with scs's
// goredisstore (which NewCached no longer shares, so it is measured on its
// own: the plain Find of a cached session), on the same redis-server, for a
// hit and for a miss that reads DynamoDB Local and fills the cache, the two
// interleaved in one loop. A session is 1 KB.
func BenchmarkRedis(b *testing.B) {
	rdb := newRedis(b)
	table := newTable(b)
	s := newStore(b, newClient(b), table)
	data := bytes.Repeat([]byte{'d'}, 1024)
	expiry := time.Now().Add(time.Hour)
	ctx := context.Background()
	const tokens = 1000
	token := func(i int) string { return fmt.Sprintf("bench-token-%04d", i%tokens) }
	for i := range tokens {
		if err := s.Commit(token(i), data, expiry); err != nil {
			b.Fatal(err)
		}
	}
	plain := goredisstore.New(rdb)
	lease := New(rdb)
	cached := dynamostore.NewCached(s, func(o *dynamostore.CacheOptions) { o.Cache = lease; o.MaxStale = time.Hour })
	for i := range tokens {
		plain.CommitCtx(ctx, token(i), data, expiry)
		if _, _, err := cached.Find(token(i)); err != nil {
			b.Fatal(err)
		}
	}
	// Each case runs the two stores in one loop, alternating which goes
	// first, so that both meet the same noise; the ratio is of the sums.
	// setup, when not nil, runs before each pair, outside the time taken.
	pair := func(b *testing.B, name string, setup, goredis, rediscache func(i int)) {
		b.Run(name, func(b *testing.B) {
			var took [2]time.Duration
			steps := [2]func(int){goredis, rediscache}
			i := 0
			for b.Loop() {
				if setup != nil {
					setup(i)
				}
				for k := range 2 {
					which := (i + k) % 2
					start := time.Now()
					steps[which](i)
					took[which] += time.Since(start)
				}
				i++
			}
			b.ReportMetric(float64(took[0].Nanoseconds())/float64(i), "goredisstore-ns/call")
			b.ReportMetric(float64(took[1].Nanoseconds())/float64(i), "rediscache-ns/call")
			b.ReportMetric(float64(took[1])/float64(took[0]), "rediscache/goredisstore")
		})
	}
	pair(b, "hit", nil, func(i int) {
		if _, found, err := plain.FindCtx(ctx, token(i)); !found || err != nil {
			b.Fatal(found, err)
		}
	}, func(i int) {
		if _, found, err := cached.Find(token(i)); !found || err != nil {
			b.Fatal(found, err)
		}
	})
	// A miss: the copy is dropped first (outside the time taken), as
	// another instance's write would, then Find reads DynamoDB and fills;
	// for goredisstore, its Find, the store's Find and its Commit.
	drop := func(i int) {
		plain.DeleteCtx(ctx, token(i))
		id, _ := lease.BeginWrite(ctx, keyOf(table, token(i))[len(DefaultKeyPrefix):])
		lease.EndWrite(ctx, keyOf(table, token(i))[len(DefaultKeyPrefix):], id, nil, time.Time{})
	}
	pair(b, "miss", drop, func(i int) {
		if _, found, err := plain.FindCtx(ctx, token(i)); found || err != nil {
			b.Fatal(found, err)
		}
		got, _, err := s.Find(token(i))
		if err != nil {
			b.Fatal(err)
		}
		plain.CommitCtx(ctx, token(i), got, expiry)
	}, func(i int) {
		if _, found, err := cached.Find(token(i)); !found || err != nil {
			b.Fatal(found, err)
		}
	})
}
