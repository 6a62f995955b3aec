package dynamostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// OwnerSession is one of an owner's live sessions, as OwnerSessions lists
// it for a "your devices" page.
type OwnerSession struct {
	ID        string    // opaque, stable for the session's life (under Options.ClearTokenFallback, its hashed key's, moved or not); safe to put in a page and post back
	Data      []byte    // the session data as scs encoded it (opened if sealed): decode it with the manager's Codec
	Expiry    time.Time // when the session expires, to the millisecond
	LastWrite time.Time // when a Commit last wrote it, to the millisecond
	Size      int       // the item's size in bytes as DynamoDB counts it
}

// OwnerSessions returns the owner's live sessions under this store's
// KeyPrefix, most recently written first: the sessions Find serves, and,
// in a store without Encryption (the command-line tool's), the sealed ones
// by their shape and expiry, with nil Data. Expired sessions are never
// listed.
//
// It costs one Query of OwnerIndex (0.5 read units per 4 KB of keys) and
// one read of each session (BatchGetItem: a read unit per 4 KB of item
// with ConsistentRead, half that without): a user with 5 sessions of up
// to 4 KB costs 5.5 read units, one with 100 sessions 101.
//
// The owner index is eventually consistent, so a session committed a
// moment ago may be missing (the README's "Your devices" gives the lag
// measured); each session the index lists is read again and its owner
// checked in the item itself, so one that changed hands meanwhile is never
// listed under its old owner. LastWrite is when a Commit of the session
// last reached the table: through a CachedStore with SkipWriteWithin, it
// lags by up to SkipWriteWithin. A session last written before the store
// recorded LastWrite has a zero LastWrite, and is listed last.
//
// The store's Client must also have the Query and BatchGetItem methods, as
// *dynamodb.Client and DAX's client do; OwnerSessions returns an error
// wrapping ErrClientMethod when it lacks them, and one wrapping
// ErrIndexNotFound when the table has no OwnerIndex.
func (s *DynamoStore) OwnerSessions(ctx context.Context, owner string) (sessions []OwnerSession, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opOwnerSessions, start, err, true) }(time.Now())
	listed, err := s.ownerSessions(ctx, opOwnerSessions, owner)
	if err != nil {
		return nil, err
	}
	sessions = make([]OwnerSession, len(listed))
	for i, l := range listed {
		sessions[i] = l.OwnerSession
	}
	return sessions, nil
}

// listedSession is an OwnerSession with its key.
type listedSession struct {
	OwnerSession
	key    string
	hashed bool // marked as written under a hashed token
}

// ownerSessions is OwnerSessions for op, with each session's key.
func (s *DynamoStore) ownerSessions(ctx context.Context, op operation, owner string) ([]listedSession, error) {
	if s.batchGet == nil {
		return nil, s.opError(op.String(), fmt.Errorf("%w: the Client, a %T, has no BatchGetItem method; use a *dynamodb.Client or a wrapper that has it", ErrClientMethod, s.client))
	}
	var keys []string
	if err := s.ownerKeys(ctx, op, owner, func(key string) { keys = append(keys, key) }); err != nil {
		return nil, err
	}
	now := s.now()
	listed := []listedSession{}
	// The whole item, whose size is listed: a read is billed for the
	// whole item whatever it returns.
	err := s.readItems(ctx, op, keys, nil, nil, func(item map[string]types.AttributeValue) {
		key, data, expiry, ok := s.liveOwned(op, item, owner, now)
		if !ok {
			return
		}
		var lastWrite time.Time
		if w, ok := item[sessionitem.LastWriteAttribute].(*types.AttributeValueMemberN); ok {
			if ms, err := sessionitem.ParseNumber(w.Value); err == nil {
				lastWrite = time.UnixMilli(ms)
			}
		}
		_, hashed := item[sessionitem.HashedKeyAttribute]
		listed = append(listed, listedSession{key: key, hashed: hashed, OwnerSession: OwnerSession{
			ID:        s.listedID(key, hashed),
			Data:      data,
			Expiry:    time.UnixMilli(expiry),
			LastWrite: lastWrite,
			Size:      storedSize(item),
		}})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(listed, func(a, b listedSession) int {
		return cmp.Or(b.LastWrite.Compare(a.LastWrite), b.Expiry.Compare(a.Expiry), cmp.Compare(a.ID, b.ID),
			cmp.Compare(btoi(b.hashed), btoi(a.hashed)))
	})
	// Under the fallback a session a Find is moving is listed twice for a
	// moment, by its clear and its hashed key, with one ID: once, hashed.
	// The first of them is the more recent, or the hashed one.
	seen := make(map[string]bool, len(listed))
	listed = slices.DeleteFunc(listed, func(l listedSession) bool {
		dup := seen[l.ID]
		seen[l.ID] = true
		return dup
	})
	return listed, nil
}

// CurrentSessionID returns the ID, as OwnerSessions lists it, of the
// session of the request whose context ctx is: sm.Token(ctx), hashed as
// scs hashes it when sm.HashTokenInStore is set (SHA-256, base64url
// without padding), and as the store hashes what scs gives it under
// Options.HashTokens. It returns "" where there is none: a session not yet
// committed, a nil sm, or a ctx that sm.LoadAndSave did not make (where
// scs's Token would panic). It sends no request.
func (s *DynamoStore) CurrentSessionID(ctx context.Context, sm *scs.SessionManager) (id string) {
	if sm == nil {
		return ""
	}
	defer func() {
		if recover() != nil {
			id = "" // scs: no session data in the context
		}
	}()
	token := sm.Token(ctx)
	if token == "" {
		return ""
	}
	if sm.HashTokenInStore {
		token = sessionitem.HashToken(token)
	}
	key, ok := s.key(token)
	if !ok {
		return ""
	}
	return sessionitem.SessionID(key)
}

// DeleteOwnerSession revokes the owner's session whose ID (see
// OwnerSessions) is id, as Delete does: until Options.RevocationPeriod
// has passed no Commit of its token, from a request in flight, a cached
// copy or another instance, stores it again. It reports whether it
// revoked one. It revokes nothing, and returns false, for an empty or
// unknown ID, the ID of an expired session, of another owner's session
// (so a user who posts another's ID revokes nothing and learns nothing),
// and of a session the owner index does not list yet, a moment after its
// first Commit.
//
// It costs one Query of OwnerIndex and, when the ID is listed, one write.
// The store's Client must also have the Query method; see DeleteOwner for
// the errors.
func (s *DynamoStore) DeleteOwnerSession(ctx context.Context, owner, id string) (bool, error) {
	return s.DeleteOwnerSessionFunc(ctx, owner, id, nil)
}

// DeleteOwnerSessionFunc is DeleteOwnerSession that calls fn around the
// delete, as DeleteOwnerFunc does. It makes DynamoStore an
// OwnerSessionStore, through which a CachedStore drops its copy of the
// session it deletes.
func (s *DynamoStore) DeleteOwnerSessionFunc(ctx context.Context, owner, id string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (revoked bool, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opDeleteOwnerSession, start, err, true) }(time.Now())
	if id == "" {
		return false, nil
	}
	var keys []string
	err = s.ownerKeys(ctx, opDeleteOwnerSession, owner, func(key string) {
		if s.isListedID(key, id) {
			keys = append(keys, key)
		}
	})
	if err != nil {
		return false, err
	}
	n, err := s.revokeOwned(ctx, opDeleteOwnerSession, owner, keys, nil, "", fn)
	return n > 0, err
}

// DeleteOwnerExcept revokes every live session of the owner but the one
// whose ID is keepID, as DeleteOwner does, and returns how many it
// revoked: "log out other devices", with keepID from CurrentSessionID. A
// session that changed hands or expired meanwhile is left alone, and not
// counted. An empty keepID is an error, before any request: DeleteOwner
// revokes them all.
//
// It costs one Query of OwnerIndex and one write per session revoked. A
// session committed a moment before it may not be listed yet by the
// eventually consistent index, and survives (see DeleteOwner). It revokes,
// and counts, every session of the owner the index lists, including one
// that OwnerSessions leaves out because Find would not serve it (an item
// it cannot open or that Options.RequireEncryption refuses), since it
// reads no item: such a session was no device the user could use. The store's
// Client must also have the Query method; see DeleteOwner for the errors.
func (s *DynamoStore) DeleteOwnerExcept(ctx context.Context, owner, keepID string) (int, error) {
	return s.DeleteOwnerExceptFunc(ctx, owner, keepID, nil)
}

// DeleteOwnerExceptFunc is DeleteOwnerExcept that calls fn around each
// delete, as DeleteOwnerFunc does. It makes DynamoStore an
// OwnerSessionStore.
func (s *DynamoStore) DeleteOwnerExceptFunc(ctx context.Context, owner, keepID string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (revoked int, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opDeleteOwnerExcept, start, err, true) }(time.Now())
	if keepID == "" {
		return 0, s.opError(opDeleteOwnerExcept.String(), errors.New("keepID is empty: pass the ID of the session to keep, such as CurrentSessionID's; DeleteOwner revokes every session"))
	}
	var keys []string
	err = s.ownerKeys(ctx, opDeleteOwnerExcept, owner, func(key string) {
		// Under the fallback the kept session may be listed by its
		// clear key, while a Find moves it.
		if !s.isListedID(key, keepID) {
			keys = append(keys, key)
		}
	})
	if err != nil {
		return 0, err
	}
	return s.revokeOwned(ctx, opDeleteOwnerExcept, owner, keys, nil, keepID, fn)
}

// LimitOwner keeps the keep most recently written live sessions of the
// owner (as OwnerSessions orders them) and revokes the rest, as DeleteOwner
// does, returning how many it revoked. Expired sessions neither count
// toward keep nor in the result. A keep of 0 revokes every live session it
// lists, written meanwhile or not; a negative keep is an error, before any
// request. With a keep of 1 or more, a session written again between the
// listing and its revocation is now among the most recent: it is left
// alone, and not counted, so that the session in use is never lost.
//
// To cap a user at N sessions, call LimitOwner(ctx, owner, N-1) in the
// login handler: scs commits the new session after the handler returns,
// and the index lists it a moment later, so the new session is not among
// those LimitOwner sees. The cap is the one at each login: two logins of
// one user at once, or a second within the index's lag, each see the
// sessions before both, and the user has N+1 until the next login. Where
// that matters, call LimitOwner(ctx, owner, N) again after the Commit,
// from a later request.
//
// It costs what OwnerSessions costs and one write per session revoked.
// The store's Client must also have the Query and BatchGetItem methods;
// see OwnerSessions for the errors.
func (s *DynamoStore) LimitOwner(ctx context.Context, owner string, keep int) (int, error) {
	return s.LimitOwnerFunc(ctx, owner, keep, nil)
}

// LimitOwnerFunc is LimitOwner that calls fn around each delete, as
// DeleteOwnerFunc does. It makes DynamoStore an OwnerSessionStore.
func (s *DynamoStore) LimitOwnerFunc(ctx context.Context, owner string, keep int, fn func(ctx context.Context, token string, del func(context.Context) error) error) (revoked int, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opLimitOwner, start, err, true) }(time.Now())
	if keep < 0 {
		return 0, s.opError(opLimitOwner.String(), fmt.Errorf("keep is %d: want the number of sessions to keep, 0 or more", keep))
	}
	listed, err := s.ownerSessions(ctx, opLimitOwner, owner)
	if err != nil || len(listed) <= keep {
		return 0, err
	}
	keys := make([]string, 0, len(listed)-keep)
	var lastWrite map[string]time.Time // keep 0 keeps none, however recent
	if keep > 0 {
		lastWrite = make(map[string]time.Time, len(listed)-keep)
	}
	for _, l := range listed[keep:] {
		keys = append(keys, l.key)
		if lastWrite != nil {
			lastWrite[l.key] = l.LastWrite
		}
	}
	return s.revokeOwned(ctx, opLimitOwner, owner, keys, lastWrite, "", fn)
}

// revokeOwned revokes each session with one of keys, with the revocation
// Delete writes, conditional on it still being a live session of owner, 8
// at a time, calling fn around each as DeleteOwnerFunc does, and returns
// how many it revoked. With lastWrite, each revocation also holds only
// while the session's last write is the one listed for its key: a session
// written again since it was listed is now among the most recent, and
// LimitOwner leaves it. The session whose ID is keepID, when it is not "",
// is never revoked (see revokeListed).
func (s *DynamoStore) revokeOwned(ctx context.Context, operation operation, owner string, keys []string, lastWrite map[string]time.Time, keepID string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (int, error) {
	if fn == nil {
		fn = func(ctx context.Context, _ string, del func(context.Context) error) error { return del(ctx) }
	}
	cond, names, values := sessionitem.LiveCondition(s.names, s.now())
	cond = "#o = :o AND " + cond
	names["#o"] = s.ownerAttr
	values[":o"] = &types.AttributeValueMemberS{Value: owner}
	var count atomic.Int64
	// The first failed delete cancels the others.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepWorkers)
	for _, key := range keys {
		if gctx.Err() != nil {
			break
		}
		cond, names, values := cond, names, values
		if lastWrite != nil {
			names, values = maps.Clone(names), maps.Clone(values)
			names["#w"] = sessionitem.LastWriteAttribute
			if w := lastWrite[key]; w.IsZero() {
				cond += " AND attribute_not_exists(#w)"
			} else {
				cond += " AND #w = :w"
				values[":w"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(w.UnixMilli(), 10)}
			}
		}
		g.Go(func() error {
			return s.revokeListed(gctx, operation, key, keepID, cond, names, values, fn, &count)
		})
	}
	err := g.Wait()
	if err == nil && ctx.Err() != nil {
		err = s.opError(operation.String(), ctx.Err())
	}
	return int(count.Load()), err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
