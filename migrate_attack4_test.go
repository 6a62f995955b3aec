package dynamostore

// The fourth attack review of issue #26 ("move in without logging anyone
// out"), of the fixes from the third. A test named TestAttack4... that
// fails shows a break of a promise the README or godoc makes; one named
// TestAttack4Holds... is an attack that held. No message names a token, a
// stored key or session data.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// a4CommitUntil commits v for token through s, expiring at expiry.
func a4CommitUntil(t *testing.T, s scs.Store, token, v string, expiry time.Time) {
	t.Helper()
	if err := s.Commit(token, a3DataUntil(t, v, expiry), expiry); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// a4NextMilli waits until the clock has passed the millisecond of at, so
// that a write from now on records a later last write than one at at.
func a4NextMilli(t *testing.T, at time.Time) {
	t.Helper()
	waitUntil(t, "the next millisecond", func() bool { return time.Now().UnixMilli() > at.UnixMilli() })
}

// a4Moving starts a Find of token through mover, whose client c holds the
// move at its revocation of the clear key (after it stored the hashed
// copy), and returns once the move is held, with the function that
// releases it and returns what the Find served.
func a4Moving(t *testing.T, c *gatedClient, mover *DynamoStore, token string) (release func() (found bool, err error)) {
	t.Helper()
	reached, free := c.holdFirst(revocationPutOf(mover.prefix + token))
	t.Cleanup(free)
	type result struct {
		found bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		_, found, err := mover.Find(token)
		done <- result{found, err}
	}()
	waitChan(t, reached, "the move's revocation of the clear key")
	return func() (bool, error) {
		free()
		r := waitChan(t, done, "the held move")
		return r.found, r.err
	}
}

// TestAttack4DeleteOwnerExceptKeptMidMove: "log out other devices" under
// ClearTokenFallback. The user's session is being moved by one request
// (held after it stored the hashed copy, before it revokes the clear key)
// while another request of theirs, served from the hashed key, calls
// DeleteOwnerExcept with CurrentSessionID's ID, the hashed key's. The
// index lists the session's clear key too: under the fallback its ID is
// the hashed key's, so it is kept, and the held move serves the session.
// (The fourth attack review found the clear key revoked, and the move
// then revoking the hashed one: the kept session logged out.)
func TestAttack4DeleteOwnerExceptKeptMidMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, sessionOwner)
	old := open(nil, hooks{})
	kept, other := a3Token(t), a3Token(t)
	a3Commit(t, old, kept, "k") // before the switch
	a3Commit(t, old, other, "o")
	c := newA3Client(t)
	mover, web, admin := open(c, hooks{}, clearFallback), open(nil, hooks{}, clearFallback), open(nil, hooks{}, clearFallback)
	waitOwnerTokensN(t, admin, "alice", 2)

	release := a4Moving(t, c, mover, kept)            // tab 1's first request after the switch
	a3Want(t, "tab 2, amid the move", web, kept, "k") // served from the hashed copy
	keepID := sessionitem.SessionID(web.prefix + sessionitem.HashToken(kept))
	n, err := admin.DeleteOwnerExcept(ctx, "alice", keepID) // tab 2: "log out other devices"
	if err != nil {
		t.Fatalf("DeleteOwnerExcept: %v", err)
	}
	found, err := release()
	if err != nil {
		t.Fatalf("the held move: %v", err)
	}
	if !found {
		t.Errorf("the held move (tab 1, the kept session) served nothing")
	}
	a3Want(t, "the kept session after DeleteOwnerExcept", web, kept, "k")
	a3Want(t, "the other device after DeleteOwnerExcept", web, other, "")
	if n != 1 {
		t.Errorf("DeleteOwnerExcept revoked %d: expected 1, the other device", n)
	}
}

// TestAttack4LimitOwnerNewestMidMove: LimitOwner(keep=1) under
// ClearTokenFallback, while the user's newest session is being moved
// (held after it stored the hashed copy, before it revokes the clear
// key): the index lists that session twice, under its clear key and its
// hashed one, with the same last write and expiry (the move keeps them).
// It is counted once, by its one ID, and kept: only the older session is
// revoked, as LimitOwner's godoc promises ("the session in use is never
// lost"). (The fourth attack review found both copies counted, one
// revoked, and the user left with none.)
func TestAttack4LimitOwnerNewestMidMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, sessionOwner)
	old := open(nil, hooks{})
	c := newA3Client(t)
	mover, web, admin := open(c, hooks{}, clearFallback), open(nil, hooks{}, clearFallback), open(nil, hooks{}, clearFallback)
	older, newest := a3Token(t), a3Token(t)
	a4CommitUntil(t, web, older, "b", time.Now().Add(time.Hour)) // under its hash
	a4NextMilli(t, time.Now())
	a4CommitUntil(t, old, newest, "a", time.Now().Add(2*time.Hour)) // an instance still on clear tokens
	waitOwnerTokensN(t, admin, "alice", 2)

	release := a4Moving(t, c, mover, newest)
	waitOwnerTokensN(t, admin, "alice", 3) // the clear copy and the hashed one both live
	n, err := admin.LimitOwner(ctx, "alice", 1)
	if err != nil {
		t.Fatalf("LimitOwner: %v", err)
	}
	if _, err := release(); err != nil {
		t.Fatalf("the held move: %v", err)
	}
	a3Want(t, "the newest session after LimitOwner(1)", web, newest, "a")
	a3Want(t, "the older session after LimitOwner(1)", web, older, "")
	if n != 1 {
		t.Errorf("LimitOwner revoked %d: expected 1, the older session", n)
	}
}

// TestAttack4HoldsLimitOwnerWrittenSinceListing (holds): LimitOwner
// (keep=1) lists an older session by its clear key and is held at its
// revocation; meanwhile the user's request moves the session and commits
// it (a later last write). The clear key's revocation fails (moved), and
// so does the extra one of the hashed key (written since the listing):
// the session in use stays, and is not counted.
func TestAttack4HoldsLimitOwnerWrittenSinceListing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, sessionOwner)
	old := open(nil, hooks{})
	c := newA3Client(t)
	web, admin := open(nil, hooks{}, clearFallback), open(c, hooks{}, clearFallback)
	used, newest := a3Token(t), a3Token(t)
	a4CommitUntil(t, old, used, "1", time.Now().Add(time.Hour))
	listed := time.Now()
	a4NextMilli(t, listed)
	a4CommitUntil(t, web, newest, "n", time.Now().Add(2*time.Hour))
	waitOwnerTokensN(t, admin, "alice", 2)

	reached, free := c.holdFirst(revocationPutOf(admin.prefix + used))
	t.Cleanup(free)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := admin.LimitOwner(ctx, "alice", 1)
		done <- result{n, err}
	}()
	waitChan(t, reached, "LimitOwner's revocation of the clear key")
	a3Want(t, "the request that moves it", web, used, "1")
	a4NextMilli(t, time.Now())
	a3Commit(t, web, used, "2")
	free()
	r := waitChan(t, done, "LimitOwner")
	if r.err != nil || r.n != 0 {
		t.Errorf("LimitOwner = %d, %v: expected 0 revoked", r.n, r.err)
	}
	a3Want(t, "the session written since the listing", web, used, "2")
	a3Want(t, "the newest session", web, newest, "n")
}

// TestAttack4HoldsCachedDeleteOwnerMidMove (holds): DeleteOwner through a
// CachedStore lists a session by its clear key and is held at its
// revocation, while another instance, sharing the cache layer, moves the
// session and caches it under its hash. The extra revocation of the
// hashed key goes through the CachedStore's fn, keyed by the hash, which
// is the cached copy's key: the copy is dropped, and the session served
// nowhere.
func TestAttack4HoldsCachedDeleteOwnerMidMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, sessionOwner)
	old := open(nil, hooks{})
	layer := newMemCache(defaultMaxBytes, defaultMaxEntries)
	shared := func(o *CacheOptions) { o.Cache, o.MaxStale = layer, time.Hour }
	c := newA3Client(t)
	adminStore := open(c, hooks{}, clearFallback)
	admin, web := NewCached(adminStore, shared), NewCached(open(nil, hooks{}, clearFallback), shared)
	tok := a3Token(t)
	a3Commit(t, old, tok, "1")
	waitOwnerTokensN(t, adminStore, "alice", 1)

	reached, free := c.holdFirst(revocationPutOf(adminStore.prefix + tok))
	t.Cleanup(free)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := admin.DeleteOwner(ctx, "alice")
		done <- result{n, err}
	}()
	waitChan(t, reached, "DeleteOwner's revocation of the clear key")
	a3Want(t, "the request that moves it", web, tok, "1")
	a3Want(t, "the next request, from the cache", web, tok, "1")
	if web.Stats().Hits != 1 {
		t.Fatalf("got %+v: expected the moved session cached", web.Stats())
	}
	free()
	r := waitChan(t, done, "DeleteOwner")
	if r.err != nil || r.n != 1 {
		t.Errorf("DeleteOwner = %d, %v: expected 1", r.n, r.err)
	}
	a3Want(t, "through the cache after DeleteOwner", web, tok, "")
	a3Want(t, "through the other cache after DeleteOwner", admin, tok, "")
}

// TestAttack4HoldsSealMark (holds): under Encryption and
// RequireEncryption, items sealed by a store without HashTokens (clear
// tokens, unmarked) and by one with the fallback (marked), then resealed
// by stores with and without HashTokens, keep their marks: the unmoved
// session is moved and served, the moved one served, and neither stored
// key is a cookie. A writer who adds the mark to an unmoved session gets
// an item that opens for no one, not a move.
func TestAttack4HoldsSealMark(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, sessionOwner, withEncryption(newAEAD(t)), func(o *Options) { o.RequireEncryption = true })
	old := open(nil, hooks{})
	fb := open(nil, hooks{}, clearFallback)
	unmoved, moved, marked := a3Token(t), a3Token(t), a3Token(t)
	a3Commit(t, old, unmoved, "u")
	a3Commit(t, fb, moved, "m")
	a3Commit(t, old, marked, "x")
	for name, s := range map[string]*DynamoStore{"without HashTokens": old, "with the fallback": fb, "with HashTokens": open(nil, hooks{}, hashTokens)} {
		if n, err := s.Reseal(ctx); err != nil || n != 3 {
			t.Fatalf("Reseal %s = %d, %v: expected 3", name, n, err)
		}
	}
	if _, err := newClient(t).UpdateItem(ctx, &dynamodb.UpdateItemInput{ // the writer's one request
		TableName:                 aws.String(fb.tableName),
		Key:                       map[string]types.AttributeValue{fb.keyAttr: &types.AttributeValueMemberS{Value: fb.prefix + marked}},
		UpdateExpression:          aws.String("SET #h = :t"),
		ExpressionAttributeNames:  map[string]string{"#h": sessionitem.HashedKeyAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
	}); err != nil {
		t.Fatal(err)
	}
	a3Want(t, "the moved session's stored key sent as the cookie", fb, sessionitem.HashToken(moved), "")
	a3Want(t, "the moved session", fb, moved, "m")
	a3Want(t, "the unmoved session", fb, unmoved, "u")
	a3Want(t, "its stored key sent as the cookie after the move", fb, sessionitem.HashToken(unmoved), "")
	a3Want(t, "a session the writer marked", fb, marked, "")
	a3Want(t, "a session the writer marked, on clear tokens", old, marked, "")
	if got := itemKind(t, fb, fb.prefix+sessionitem.HashToken(marked)); got != noItem {
		t.Errorf("got %s under the marked session's hashed key: expected no move", got)
	}
}

// TestAttack4HoldsCachedMigratingDevicesHashed (holds): "your devices"
// through NewCached(NewMigrating(from, to)) where to has HashTokens: the
// CachedStore hashes its keys as to does (MigratingStore.Options), so
// CurrentSessionID names the listed session and DeleteOwnerSession drops
// the cached copy.
func TestAttack4HoldsCachedMigratingDevicesHashed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dyn := newStore(t, nil, sessionOwner, hashTokens)
	cached := NewCached(a3Phase(memstore.NewWithCleanupInterval(0), dyn, MigrateToOnly), func(o *CacheOptions) { o.MaxStale = time.Hour })
	tok := a3Token(t)
	a3Commit(t, cached, tok, "1")
	a3Want(t, "through the cache", cached, tok, "1")
	waitOwnerTokens(t, dyn, "alice", []string{sessionitem.HashToken(tok)})
	sessions, err := cached.OwnerSessions(ctx, "alice")
	if err != nil || len(sessions) != 1 {
		t.Fatalf("OwnerSessions: %d sessions, %v", len(sessions), err)
	}
	sm := scs.New()
	sm.Store = cached
	rctx, err := sm.Load(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := cached.CurrentSessionID(rctx, sm); got != sessions[0].ID {
		t.Errorf("CurrentSessionID does not name the listed session")
	}
	if ok, err := cached.DeleteOwnerSession(ctx, "alice", sessions[0].ID); err != nil || !ok {
		t.Fatalf("DeleteOwnerSession = %v, %v", ok, err)
	}
	a3Want(t, "through the cache after the device was logged out", cached, tok, "")
}

// TestAttack4NestedCachesShareKeys: a CachedStore is now a TableStore, so
// a CachedStore in front of another (NewCached(NewCached(store))) keys
// its copies exactly as the inner one does, table, prefix and hash
// included. With one SharedCache given to both, the outer one's leases
// and writes (it caches nothing itself: its backing store is no
// CacheableStore) fall on the inner one's keys: the inner fill is refused
// while the outer holds the lease, and the outer's end of a Commit drops
// the inner's copy. Before, the outer keyed by the bare token, and the
// inner cache served hits.
func TestAttack4NestedCachesShareKeys(t *testing.T) {
	t.Parallel()
	layer := newMemCache(defaultMaxBytes, defaultMaxEntries)
	shared := func(o *CacheOptions) { o.Cache, o.MaxStale = layer, time.Hour }
	inner := NewCached(newStore(t, nil, hashTokens), shared)
	outer := NewCached(inner, shared)
	tok := a3Token(t)
	a3Commit(t, outer, tok, "1")
	for range 3 {
		a3Want(t, "through both caches", outer, tok, "1")
	}
	if st := inner.Stats(); st.Hits == 0 {
		t.Errorf("got %+v from the inner cache: expected hits, as before CachedStore was a TableStore", st)
	}
}

// TestAttack4HoldsReadFromDeleteOnlyRevoked (holds): the MigrateReadFrom
// Commit that removes its write from the old store does so only for a
// token whose revocation in the new store is in force: another user's
// session the application before the move wrote stays, and so does a
// Commit of the token once its revocation has ended.
func TestAttack4HoldsReadFromDeleteOnlyRevoked(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	from := memstore.NewWithCleanupInterval(0)
	dyn := newStoreWith(t, nil, hooks{now: clock})
	readFrom := a3Phase(from, dyn, MigrateReadFrom)
	tok, other := a3Token(t), a3Token(t)
	a3Commit(t, from, other, "o") // the application before the move
	a3Commit(t, readFrom, tok, "1")
	if err := readFrom.Delete(tok); err != nil {
		t.Fatal(err)
	}
	a3Commit(t, readFrom, tok, "2") // in flight since before the logout
	a3Want(t, "the application before the move, the logged-out token", from, tok, "")
	a3Want(t, "the application before the move, another session", from, other, "o")
	mu.Lock()
	now = now.Add(dyn.opts.RevocationPeriod + time.Minute)
	mu.Unlock()
	a3Commit(t, readFrom, tok, "3")
	a3Want(t, "the token after its revocation ended, before the move", from, tok, "3")
	a3Want(t, "the token after its revocation ended, deploy 1", readFrom, tok, "3")
}
