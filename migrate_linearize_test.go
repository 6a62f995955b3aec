package dynamostore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"

	"github.com/dynamostore/dynamostore/internal/linearize"
)

// liveCodec decodes any data as a session whose deadline is an hour ahead:
// the data linearize writes is not encoded by a codec.
type liveCodec struct{}

func (liveCodec) Encode(time.Time, map[string]any) ([]byte, error) {
	return nil, errors.New("liveCodec encodes nothing")
}

func (liveCodec) Decode([]byte) (time.Time, map[string]any, error) {
	return time.Now().Add(time.Hour), nil, nil
}

// jitterStore is an scs store, without Ctx methods, that waits a random
// moment before and after each call to the store it wraps.
type jitterStore struct{ s iterableStore }

// iterableStore is an scs store that can be iterated, as memstore is.
type iterableStore interface {
	scs.Store
	scs.IterableStore
}

func (j jitterStore) Find(token string) ([]byte, bool, error) {
	linearize.Jitter()
	defer linearize.Jitter()
	return j.s.Find(token)
}

func (j jitterStore) Commit(token string, b []byte, expiry time.Time) error {
	linearize.Jitter()
	defer linearize.Jitter()
	return j.s.Commit(token, b, expiry)
}

func (j jitterStore) Delete(token string) error {
	linearize.Jitter()
	defer linearize.Jitter()
	return j.s.Delete(token)
}

func (j jitterStore) All() (map[string][]byte, error) {
	linearize.Jitter()
	defer linearize.Jitter()
	return j.s.All()
}

// plainTarget is the linearize target of a store without Ctx methods.
func plainTarget(s scs.Store) linearize.Target {
	return linearize.Target{
		Find: func(_ context.Context, token string) ([]byte, bool, error) { return s.Find(token) },
		Commit: func(_ context.Context, token string, b []byte, expiry time.Time) error {
			return s.Commit(token, b, expiry)
		},
		Delete: func(_ context.Context, token string) error { return s.Delete(token) },
	}
}

// TestMigrateLinearizable runs random concurrent histories of Find, Commit
// and Delete on two instances side by side at each boundary between the
// deploys of a move, with a random delay around every call to the old
// store (scs's memstore) and to DynamoDB; every token starts with a
// session in the old store, as one stored before the move.
//
//   - before/MigrateReadFrom: linearizable, without Deletes: the
//     application before the move knows nothing of revocations in the new
//     store, so a Delete through it and one through MigrateReadFrom differ.
//   - MigrateReadFrom/MigrateWriteBoth and MigrateReadTo/MigrateToOnly, and
//     MigrateToOnly alone behind a CachedStore: linearizable, a Delete
//     revoking the token for good.
//   - MigrateWriteBoth/MigrateReadTo: not linearizable while a Commit is in
//     flight: a MigrateReadTo Commit writes the new store, then the old; in
//     between a MigrateReadTo Find sees the new data and a MigrateWriteBoth
//     Find that begins after it returns sees the old. Checked: the weaker
//     promise, that no Find returns data older than the last Commit that
//     returned before it began (without Deletes, which that checker does
//     not model).
func TestMigrateLinearizable(t *testing.T) {
	t.Parallel()
	cfg := linearize.Config{Workers: 8, OpsPerWorker: 300, Tokens: 2}
	setup := func(t *testing.T) (from iterableStore, to *DynamoStore, c linearize.Config) {
		mem := memstore.NewWithCleanupInterval(0)
		to = newStore(t, linearize.JitterDynamoDB{DynamoDB: newClient(t)})
		c = cfg
		c.Seed = func(_ context.Context, token string, data []byte) error {
			return mem.Commit(token, data, time.Now().Add(time.Hour))
		}
		return jitterStore{mem}, to, c
	}
	phase := func(from, to scs.Store, p MigratePhase) *MigratingStore {
		return NewMigrating(from, to, liveCodec{}, func(o *MigrateOptions) { o.Phase = p })
	}
	t.Run("before/MigrateReadFrom", func(t *testing.T) {
		t.Parallel()
		from, to, c := setup(t)
		c.NoDelete = true
		t.Logf("%s", linearize.Run(t, c, plainTarget(from), target(phase(from, to, MigrateReadFrom))))
	})
	for _, pair := range [][2]MigratePhase{{MigrateReadFrom, MigrateWriteBoth}, {MigrateReadTo, MigrateToOnly}} {
		t.Run(pair[0].String()+"/"+pair[1].String(), func(t *testing.T) {
			t.Parallel()
			from, to, c := setup(t)
			t.Logf("%s", linearize.Run(t, c, target(phase(from, to, pair[0])), target(phase(from, to, pair[1]))))
		})
	}
	t.Run("MigrateWriteBoth/MigrateReadTo", func(t *testing.T) {
		t.Parallel()
		from, to, c := setup(t)
		c.Fresh, c.NoDelete = true, true
		t.Logf("weaker promise: %s", linearize.Run(t, c, target(phase(from, to, MigrateWriteBoth)), target(phase(from, to, MigrateReadTo))))
	})
	t.Run("cached-MigrateToOnly", func(t *testing.T) {
		t.Parallel()
		from, to, c := setup(t)
		cached := NewCached(phase(from, to, MigrateToOnly), func(o *CacheOptions) {
			o.Cache = jitterCache{newMemCache(defaultMaxBytes, defaultMaxEntries)}
		})
		counts := linearize.Run(t, c, target(cached))
		t.Logf("%s; %+v", counts, cached.Stats())
	})
}
