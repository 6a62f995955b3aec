package dynamostore

import (
	"context"
	"time"

	"github.com/alexedwards/scs/v2"
)

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
