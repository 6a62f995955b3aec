package dynamostore

import (
	"context"
	"log/slog"
	"time"

	"github.com/alexedwards/scs/v2"
	"go.opentelemetry.io/otel/metric"
)

// CacheOptions configures a CachedStore. NewCached fills in the defaults
// before it calls the caller's option functions.
type CacheOptions struct {
	// Cache is the cache layer. Nil, the default, means a bounded in-process
	// cache (otter's, which evicts the sessions least likely to be read
	// again), one per CachedStore. A layer that several CachedStores share,
	// in one process or many, must be a SharedCache, which keeps what they
	// cache coherent: rediscache.New's Cache on Redis is one. In front of a
	// DynamoStore, a SharedCache keys each copy by the table, the
	// KeyPrefix and the token, so applications fenced apart in DynamoDB
	// stay apart in a Redis they share; in front of another backing store,
	// give each application a rediscache KeyPrefix of its own.
	//
	// Any other scs.Store (scs's goredisstore or memstore, say) is not
	// used: with only Find, Commit and Delete, a cache shared by several
	// instances cannot stop one instance from caching what it read just
	// before another deleted it, and then serving it. NewCached logs that
	// at Error and uses the in-process cache instead. To move from
	// goredisstore, use rediscache.New with the same go-redis client.
	Cache scs.Store

	// MaxBytes bounds the in-process cache by the memory it holds: each
	// session weighs its token and its data (the capacity of the slice,
	// which may exceed its length), plus 200 bytes for the entry itself. A
	// session of more than a quarter of MaxBytes is not cached.
	// The default is 64 MiB; zero or less takes the default. It does not
	// apply to a SharedCache.
	MaxBytes int64

	// MaxEntries bounds the in-process cache in sessions: each session
	// weighs at least MaxBytes / MaxEntries, so the cache never holds more
	// than MaxEntries. With the defaults, that is 6.7 KB, and sessions
	// smaller than that are bounded by count rather than bytes. The
	// default is 10,000; zero or less takes the default.
	MaxEntries int

	// MaxStale is the longest a cached copy is served without asking the
	// backing store. With the in-process cache, it is the longest another
	// instance's Commit or Delete can go unseen by this one's Finds (a
	// Commit through such a copy of a deleted session stores nothing and
	// drops the copy: see Options.RevocationPeriod); with a SharedCache,
	// every instance sees every write through a CachedStore at once. A
	// cached copy never outlives the session's expiry either. The default
	// is 10 seconds; zero or less takes the default.
	MaxStale time.Duration

	// SkipWriteWithin saves backing writes for scs's IdleTimeout, which
	// commits the same data with a later expiry on every request: a Commit
	// whose data equals the cached copy's, and whose expiry moved forward
	// less than SkipWriteWithin from the copy's, does not reach the
	// backing store. The stored expiry then lags, so an idle session may
	// expire up to SkipWriteWithin early. With an in-process cache on
	// several instances, a skipped Commit trusts a copy that another
	// instance's write may have made stale: the copy is kept, to its end
	// (at most MaxStale), rather than dropped, and the Commit is lost if
	// the other instance changed the data. A SharedCache has no such
	// copies. Zero, the default, never skips, and neither does a negative
	// value.
	SkipWriteWithin time.Duration

	// MeterProvider makes the CachedStore's OpenTelemetry instruments:
	// lookups by result (hit or miss), skipped writes, and errors of the
	// cache layer, which cost a miss but are never the caller's. They
	// carry the table's name when the backing store is a DynamoStore. The
	// default is nil: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider

	// Logger receives NewCached's word about a Cache it cannot use. The
	// default, and what nil means, is slog.Default().
	Logger *slog.Logger
}

// The defaults of CacheOptions.
const (
	defaultMaxBytes   = 64 << 20
	defaultMaxEntries = 10_000
	defaultMaxStale   = 10 * time.Second
)

// CacheStats counts what a CachedStore did since it was created.
type CacheStats struct {
	Hits          uint64 // Finds answered by the cache
	Misses        uint64 // Finds that read the backing store
	SkippedWrites uint64 // Commits that SkipWriteWithin kept from the backing store
	CacheErrors   uint64 // errors of the cache layer: a failed lookup or fill costs a miss; a write the cache cannot be told of is refused
}

// CacheableStore is a backing store that tells a CachedStore what it needs
// to cache exactly: when the session it finds expires, and whether a
// Commit stored the session or found its token revoked. DynamoStore is
// one; a wrapper around a DynamoStore must forward these methods too. A
// CachedStore caches nothing in front of a backing store that is not one
// (NewCached logs that at Warn): it could not tell how long a copy may
// live, nor whether a Commit of a revoked token stored anything.
type CacheableStore interface {
	// FindExpiryCtx is FindCtx that also returns the session's expiry.
	FindExpiryCtx(ctx context.Context, token string) (b []byte, expiry time.Time, found bool, err error)
	// CommitStoredCtx is CommitCtx that also reports whether the session
	// was stored: false, with a nil error, when its token is revoked.
	CommitStoredCtx(ctx context.Context, token string, b []byte, expiry time.Time) (stored bool, err error)
}

// CacheEntry is a cached copy of a session.
type CacheEntry struct {
	Data   []byte
	Expiry time.Time // the session's expiry, as the backing store holds it
}

// CacheLookup is what SharedCache.Lookup found.
type CacheLookup struct {
	// Entry is the cached copy, when Found.
	Entry CacheEntry
	Found bool

	// Lease, when not zero, is the token's lease: a right to Fill the
	// copy that a miss reads from the backing store, which the cache
	// grants one caller at a time and withdraws at the next BeginWrite of
	// the token. Granted says it was granted to this caller; otherwise
	// another caller holds it, whose read this one may share.
	Lease   uint64
	Granted bool
}

// SharedCache is a cache layer that keeps the copies of several
// CachedStores coherent, so that together they are linearizable: every
// Find returns what the last Commit or Delete to finish left, or what one
// under way leaves. It does that with leases, as memcache does at Facebook
// (Nishtala et al., NSDI 2013): a miss may fill only a token that no write
// has touched since the miss began, and while any write of a token is under
// way no copy of it is served or filled. CacheOptions.Cache takes one;
// rediscache.Cache, on Redis, is one.
//
// A CachedStore calls BeginWrite before each Commit or Delete it sends to
// the backing store, and EndWrite after it, however it ended; if BeginWrite
// fails, the write is not sent. Lookup with lease true, then Fill, serve a
// miss. A SharedCache is also an scs.Store, so that it fits
// CacheOptions.Cache; a CachedStore does not call those methods.
type SharedCache interface {
	scs.Store

	// Lookup returns the token's copy if there is one and it is fresh. If
	// not, and lease is true, it grants the token's lease unless a write is
	// under way or another caller holds it.
	Lookup(ctx context.Context, token string, lease bool) (CacheLookup, error)

	// Fill ends a lease that Lookup granted: it caches entry until until,
	// if the lease is still the token's, and does nothing otherwise. A nil
	// entry gives the lease up.
	Fill(ctx context.Context, token string, lease uint64, entry *CacheEntry, until time.Time) error

	// BeginWrite drops the token's copy and lease, and keeps the token
	// uncached until every write begun has ended. It returns a number
	// that the write's EndWrite passes back.
	BeginWrite(ctx context.Context, token string) (write uint64, err error)

	// EndWrite ends a write begun with BeginWrite. entry is what it
	// stored, or nil: the cache keeps it until until when no other write
	// of the token overlapped this one.
	EndWrite(ctx context.Context, token string, write uint64, entry *CacheEntry, until time.Time) error
}

// TableStore is a backing store that tells a CachedStore its options: a
// SharedCache then keeps apart the copies of stores fenced apart in
// DynamoDB (by TableName and KeyPrefix), and the CachedStore's errors and
// metrics name the table. DynamoStore is one; a wrapper around a
// DynamoStore should forward Options too.
type TableStore interface {
	Options() Options
}

// OwnerStore is a backing store that deletes all of an owner's sessions,
// through which CachedStore.DeleteOwner drops each cached copy as it
// deletes the session. DynamoStore is one; a wrapper around a DynamoStore
// must forward DeleteOwnerFunc for CachedStore.DeleteOwner to work.
type OwnerStore interface {
	// DeleteOwnerFunc deletes the owner's sessions, calling fn around
	// each delete (see DynamoStore.DeleteOwnerFunc).
	DeleteOwnerFunc(ctx context.Context, owner string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (deleted int, err error)
}

// OwnerSessionStore is a backing store that lists an owner's sessions and
// revokes some of them, through which a CachedStore's OwnerSessions,
// CurrentSessionID, DeleteOwnerSession, DeleteOwnerExcept and LimitOwner
// work, dropping each cached copy as they revoke the session. DynamoStore
// is one; a wrapper around a DynamoStore must forward these methods for
// them to work.
type OwnerSessionStore interface {
	// OwnerSessions lists the owner's live sessions (see
	// DynamoStore.OwnerSessions).
	OwnerSessions(ctx context.Context, owner string) ([]OwnerSession, error)
	// CurrentSessionID returns the ID of the request's own session (see
	// DynamoStore.CurrentSessionID).
	CurrentSessionID(ctx context.Context, sm *scs.SessionManager) string
	// DeleteOwnerSessionFunc, DeleteOwnerExceptFunc and LimitOwnerFunc
	// revoke sessions of the owner, calling fn around each delete (see
	// DynamoStore.DeleteOwnerFunc).
	DeleteOwnerSessionFunc(ctx context.Context, owner, id string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (bool, error)
	DeleteOwnerExceptFunc(ctx context.Context, owner, keepID string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (int, error)
	LimitOwnerFunc(ctx context.Context, owner string, keep int, fn func(ctx context.Context, token string, del func(context.Context) error) error) (int, error)
}

// CommitNewStore is a store that stores a session only where it holds
// neither a live session nor a revocation under its token, and says
// whether it did: how a session moves in from another store (NewMigrating,
// Import) without overwriting newer data or bringing back a revoked
// session. DynamoStore and CachedStore are ones; a wrapper around either
// must forward CommitNewCtx.
type CommitNewStore interface {
	// CommitNewCtx stores the session unless the store holds a live
	// session or a revocation in force under token (see
	// DynamoStore.CommitNewCtx).
	CommitNewCtx(ctx context.Context, token string, b []byte, expiry time.Time) (stored bool, err error)
}
