package rediscache

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

// BenchmarkRedis compares a CachedStore on rediscache with one on scs's
// goredisstore (which NewCached no longer shares, so it is measured on its
// own: the plain Find of a cached session), on the same redis-server, for a
// hit and for a miss that reads DynamoDB Local and fills the cache. A
// session is 1 KB.
func BenchmarkRedis(b *testing.B) {
	rdb := ddblocal.StartRedis(b)
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
	b.Run("hit/goredisstore", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, found, err := plain.FindCtx(ctx, token(i)); !found || err != nil {
				b.Fatal(found, err)
			}
			i++
		}
	})
	b.Run("hit/rediscache", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, found, err := cached.Find(token(i)); !found || err != nil {
				b.Fatal(found, err)
			}
			i++
		}
	})
	// A miss: the copy is dropped first (outside the timer), as another
	// instance's write would, then Find reads DynamoDB and fills.
	b.Run("miss/goredisstore", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			plain.DeleteCtx(ctx, token(i))
			b.StartTimer()
			if _, found, err := plain.FindCtx(ctx, token(i)); found || err != nil {
				b.Fatal(found, err)
			}
			got, _, err := s.Find(token(i))
			if err != nil {
				b.Fatal(err)
			}
			plain.CommitCtx(ctx, token(i), got, expiry)
			i++
		}
	})
	b.Run("miss/rediscache", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			id, _ := lease.BeginWrite(ctx, keyOf(table, token(i))[len(DefaultKeyPrefix):])
			lease.EndWrite(ctx, keyOf(table, token(i))[len(DefaultKeyPrefix):], id, nil, time.Time{})
			b.StartTimer()
			if _, found, err := cached.Find(token(i)); !found || err != nil {
				b.Fatal(found, err)
			}
			i++
		}
	})
}
