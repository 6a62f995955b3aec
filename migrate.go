package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// MigratePhase is a phase of a move from one scs store to another, one
// deploy each, in the order MigrateReadFrom, MigrateWriteBoth,
// MigrateReadTo, MigrateToOnly. During a rolling deploy the instances of
// two neighbouring phases run side by side; each phase reads and writes so
// that no request sees data older than the last Commit that had returned
// before it began, on either kind of instance. While a Commit is in
// flight, two instances of neighbouring phases may answer with the data
// before it and after it. The README's "Move in from another store" walks
// through them.
type MigratePhase int

const (
	// MigrateToOnly, the last phase and the default, reads the new store
	// first and, on a miss, the old one, moving a live session it finds
	// there into the new store; it writes the new store only. Its
	// instances may run beside those of MigrateReadTo.
	MigrateToOnly MigratePhase = iota

	// MigrateWriteBoth, the second phase, reads the old store (and asks
	// the new one whether the token is revoked there), and writes the new
	// store, then the old. Its instances may run beside those of
	// MigrateReadFrom and of MigrateReadTo.
	MigrateWriteBoth

	// MigrateReadFrom, the first phase, reads the old store (and asks the
	// new one whether the token is revoked there) and writes the old store
	// only, as the application did before, removing after each write any
	// copy of the session in the new store, without revoking its token
	// there. Its instances may run beside those of the application before
	// the move, which know nothing of the new store, and of
	// MigrateWriteBoth.
	MigrateReadFrom

	// MigrateReadTo, the third phase, reads as MigrateToOnly does and
	// writes the new store, then the old. Its instances may run beside
	// those of MigrateWriteBoth, which still read the old store, and of
	// MigrateToOnly.
	MigrateReadTo
)

// String returns the phase's name, as MigrateOptions' godoc writes it.
func (p MigratePhase) String() string {
	switch p {
	case MigrateToOnly:
		return "MigrateToOnly"
	case MigrateWriteBoth:
		return "MigrateWriteBoth"
	case MigrateReadFrom:
		return "MigrateReadFrom"
	case MigrateReadTo:
		return "MigrateReadTo"
	}
	return fmt.Sprintf("MigratePhase(%d)", int(p))
}

// readsTo reports whether the phase reads the new store first.
func (p MigratePhase) readsTo() bool { return p == MigrateReadTo || p == MigrateToOnly }

// MigrateOptions configure a MigratingStore.
type MigrateOptions struct {
	// Phase is the phase of the move this deploy runs. The default is
	// MigrateToOnly, the last.
	Phase MigratePhase

	// IdleTimeout is the scs.SessionManager's IdleTimeout, if it has one.
	// scs stores a session under such a manager with an expiry of its
	// last request plus IdleTimeout, earlier than the deadline in its
	// data; a session moved in expires at the earlier of its deadline and
	// IdleTimeout after the move. Zero, the default, keeps the deadline.
	IdleTimeout time.Duration

	// MeterProvider makes the MigratingStore's OpenTelemetry counter,
	// dynamostore.migrate.finds, by result: to, from, moved or miss, as
	// Stats counts them. The default is nil: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
}

// MigrateStats counts a MigratingStore's Finds by where their answer came
// from. Once Moved and From stay at zero for a session lifetime, the old
// store holds nothing a user still needs, and the next deploy can drop it.
type MigrateStats struct {
	To     uint64 // Finds answered by the new store
	Moved  uint64 // Finds answered by the old store, the session moved into the new one
	From   uint64 // Finds answered by the old store without a move (MigrateReadFrom, MigrateWriteBoth)
	Misses uint64 // Finds neither store answered with a live session
}

// MigratingStore is an scs store for the deploys that move an application
// from one scs store (the old, from) to another (the new, to), such as
// from scs's redisstore or postgresstore to a DynamoStore, without logging
// anyone out. See NewMigrating.
type MigratingStore struct {
	from, to scs.Store
	codec    scs.Codec
	phase    MigratePhase
	idle     time.Duration

	counts [4]atomic.Uint64 // by resultTo, resultMoved, resultFrom, resultMiss
	finds  metric.Int64Counter
	result [4][]metric.AddOption // the counter's attributes, by result
}

const (
	resultTo = iota
	resultMoved
	resultFrom
	resultMiss
)

// NewMigrating returns a store that serves the sessions of from while the
// application moves to to, as the phase in the options says (the default,
// MigrateToOnly, is the last phase):
//
//   - Find reads to first. On a miss it reads from, and a session found
//     there whose deadline, as codec decodes it from the data (scs encodes
//     the deadline with the values), is still ahead is written to to with
//     that deadline, then served. A session past its decoded deadline, or
//     one whose data codec cannot decode, is never served.
//   - Commit writes to only; Delete removes the session from both, to
//     first.
//
// A revocation in to is final here too. A token deleted through to
// (Delete, DeleteOwner, RenewToken's Delete, the "your devices" methods)
// is never moved in again from a copy that from still holds, or that an
// instance still on the old deploy writes there later: the move is
// CommitNewCtx when to is a CommitNewStore (a DynamoStore, or a
// CachedStore in front of one), which stores nothing over a revocation in
// force, and the phases that read from ask to first whether the token is
// revoked there. That holds for to's Options.RevocationPeriod; with a
// RevocationPeriod at least the session lifetime (the default, 24 hours,
// is scs's default Lifetime), every copy in from has passed its deadline
// before the revocation ends. A to that is no CommitNewStore, such as
// scs's memstore, has no revocations, and the move is a Commit. DeleteOwner
// reaches the sessions to holds: one not yet moved is still only in from,
// which has no owner index, so run Import before relying on it.
//
// A move costs, beside the miss in to, one read of from and one write of
// to (with a DynamoStore, one write unit per KB of session); a Find of a
// session to already holds costs what it costs without the move. In
// MigrateReadFrom and MigrateWriteBoth each Find that finds a session in
// from also reads to (whether the token is revoked there), and in MigrateReadFrom
// each Commit a write of from and a delete in to.
//
// All and AllCtx return the union of both stores' sessions, the one Find
// reads first winning where both have a token; they return an error when
// a store cannot be iterated. The MigratingStore calls the Ctx methods of
// each store that has them (scs's goredisstore panics on the plain ones),
// works behind NewCached (it is a CacheableStore, an OwnerStore and an
// OwnerSessionStore), and with scs's HashTokenInStore, since both stores
// receive the token scs sends, or the new store's Options.HashTokens.
//
// NewMigrating panics when from, to or codec is nil, and when to is a
// TableStore with Options.ClearTokenFallback: a move writes the hashed key
// alone, and would not see a revocation or newer data under the clear
// one. Move from the old store first, then from clear tokens to hashed
// ones, or the other way round.
func NewMigrating(from, to scs.Store, codec scs.Codec, optFns ...func(*MigrateOptions)) *MigratingStore {
	if from == nil || to == nil || codec == nil {
		// A programmer's error, caught at start rather than at the
		// first request.
		panic("dynamostore: NewMigrating: from, to and codec must not be nil; the codec is the scs.SessionManager's Codec, such as scs.GobCodec{}")
	}
	if ts, ok := to.(TableStore); ok && ts.Options().ClearTokenFallback {
		// A move writes the hashed key alone, and would not see newer
		// data or a revocation under the clear one.
		panic("dynamostore: NewMigrating: the new store has Options.ClearTokenFallback; finish one move before the other: move stores first, or hash tokens first")
	}
	var o MigrateOptions
	for _, fn := range optFns {
		fn(&o)
	}
	mp := o.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := &MigratingStore{from: from, to: to, codec: codec, phase: o.Phase, idle: o.IdleTimeout}
	m.finds, _ = mp.Meter(instrumentationScope).Int64Counter("dynamostore.migrate.finds",
		metric.WithDescription("MigratingStore Finds, by result: to (the new store answered), moved (the old store answered, the session moved), from (the old store answered, no move) or miss."))
	for i, r := range []string{"to", "moved", "from", "miss"} {
		m.result[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("result", r)))}
	}
	return m
}

// Stats returns the counts of Finds since NewMigrating.
func (m *MigratingStore) Stats() MigrateStats {
	return MigrateStats{To: m.counts[resultTo].Load(), Moved: m.counts[resultMoved].Load(), From: m.counts[resultFrom].Load(), Misses: m.counts[resultMiss].Load()}
}

func (m *MigratingStore) count(ctx context.Context, result int) {
	m.counts[result].Add(1)
	m.finds.Add(ctx, 1, m.result[result]...)
}

// Find returns the session's data as NewMigrating says. It calls FindCtx
// with context.Background().
func (m *MigratingStore) Find(token string) ([]byte, bool, error) {
	return m.FindCtx(context.Background(), token)
}

// FindCtx is like Find with a context, passed to the stores that take one.
func (m *MigratingStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	b, _, found, err := m.FindExpiryCtx(ctx, token)
	return b, found, err
}

// FindExpiryCtx is FindCtx that also returns the session's expiry, the
// deadline codec decodes from its data (or the new store's, when it is a
// CacheableStore): it makes the MigratingStore a CacheableStore, which a
// CachedStore can cache in front of.
func (m *MigratingStore) FindExpiryCtx(ctx context.Context, token string) (b []byte, expiry time.Time, found bool, err error) {
	if !m.phase.readsTo() {
		// from is the one every instance writes, so the one to read;
		// to says whether the token is revoked, asked after the read:
		// what was read then came before any revocation, and no Commit
		// since the revocation (one in flight writes from again) is
		// served.
		b, expiry, found, err = m.findLive(ctx, m.from, token)
		if err != nil || !found {
			if err == nil {
				m.count(ctx, resultMiss)
			}
			return nil, time.Time{}, false, err
		}
		revoked, err := m.revoked(ctx, token)
		if err != nil {
			return nil, time.Time{}, false, err
		}
		m.countFound(ctx, !revoked, resultFrom)
		if revoked {
			return nil, time.Time{}, false, nil
		}
		return b, expiry, true, nil
	}
	b, expiry, found, err = m.findTo(ctx, token)
	if err != nil || found {
		if found {
			m.count(ctx, resultTo)
		}
		return b, expiry, found, err
	}
	b, expiry, found, err = m.findLive(ctx, m.from, token)
	if err != nil || !found {
		if err == nil {
			m.count(ctx, resultMiss)
		}
		return nil, time.Time{}, false, err
	}
	if m.idle > 0 {
		expiry = earliest(expiry, time.Now().Add(m.idle))
	}
	// Every instance beside this one writes to before from, and none
	// removes to's copy: a Commit since the read of from stored newer
	// data in to, over which the move stores nothing.
	stored, err := m.commitNew(ctx, token, b, expiry)
	if err != nil {
		return nil, time.Time{}, false, m.opError("find: move", err)
	}
	if !stored {
		// to holds the session (written since it missed) or a
		// revocation: what to holds now is the answer.
		b, expiry, found, err = m.findTo(ctx, token)
		if err == nil {
			m.countFound(ctx, found, resultTo)
		}
		return b, expiry, found, err
	}
	m.count(ctx, resultMoved)
	return b, expiry, true, nil
}

// findTo reads the session from to, with to's expiry where to is a
// CacheableStore (a DynamoStore's idle expiry may be before the deadline).
func (m *MigratingStore) findTo(ctx context.Context, token string) ([]byte, time.Time, bool, error) {
	cs, ok := m.to.(CacheableStore)
	if !ok {
		return m.findLive(ctx, m.to, token)
	}
	b, expiry, found, err := cs.FindExpiryCtx(ctx, token)
	if err != nil || !found {
		return nil, time.Time{}, false, err
	}
	return b, expiry, true, nil
}

// revoked reports whether to holds a revocation in force for the token:
// a DynamoStore, or a CachedStore in front of one, says; another store has
// none.
func (m *MigratingStore) revoked(ctx context.Context, token string) (bool, error) {
	if r, ok := m.to.(revoker); ok {
		return r.revokedCtx(ctx, token)
	}
	return false, nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// countFound counts a Find as result, or as a miss.
func (m *MigratingStore) countFound(ctx context.Context, found bool, result int) {
	if !found {
		result = resultMiss
	}
	m.count(ctx, result)
}

// findLive reads the session from s and returns it with its expiry when
// its deadline, as codec decodes it, is still ahead.
func (m *MigratingStore) findLive(ctx context.Context, s scs.Store, token string) ([]byte, time.Time, bool, error) {
	b, found, err := findCtx(ctx, s, token)
	if err != nil || !found {
		return nil, time.Time{}, false, err
	}
	deadline, _, err := m.codec.Decode(b)
	if err != nil || !deadline.After(time.Now()) {
		return nil, time.Time{}, false, nil // never served: undecodable, or past its deadline
	}
	return b, deadline, true, nil
}

// commitNew moves the session into to: CommitNewCtx where to has it, so
// that a revocation there holds, and otherwise a Commit.
func (m *MigratingStore) commitNew(ctx context.Context, token string, b []byte, expiry time.Time) (bool, error) {
	if cn, ok := m.to.(CommitNewStore); ok {
		return cn.CommitNewCtx(ctx, token, b, expiry)
	}
	return true, commitCtx(ctx, m.to, token, b, expiry)
}

// forget removes to's copy of the session without revoking its token
// there, and reports whether to holds a revocation in force for it: a
// DynamoStore's or CachedStore's item is deleted unless it is one;
// another store's is deleted.
func (m *MigratingStore) forget(ctx context.Context, token string) (revoked bool, err error) {
	if f, ok := m.to.(forgetter); ok {
		return f.forgetCtx(ctx, token)
	}
	return false, deleteCtx(ctx, m.to, token)
}

// Commit writes the session as the phase says: the new store (and then
// the old, in MigrateWriteBoth and MigrateReadTo), or the old store
// (MigrateReadFrom). It calls CommitCtx with context.Background().
func (m *MigratingStore) Commit(token string, b []byte, expiry time.Time) error {
	return m.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is like Commit with a context, passed to the stores that take
// one.
func (m *MigratingStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	_, err := m.CommitStoredCtx(ctx, token, b, expiry)
	return err
}

// CommitStoredCtx is CommitCtx that also reports whether the new store
// stored the session: false, with a nil error, when its token is revoked
// there. It makes the MigratingStore a CacheableStore. In MigrateWriteBoth
// and MigrateReadTo a session the new store refused is not written to the
// old one either, where the new store says it refused (a DynamoStore does;
// a CachedStore in front of one does not, and the old store then gets a
// copy that Find never serves).
func (m *MigratingStore) CommitStoredCtx(ctx context.Context, token string, b []byte, expiry time.Time) (bool, error) {
	if m.phase == MigrateReadFrom {
		if err := commitCtx(ctx, m.from, token, b, expiry); err != nil {
			return false, err
		}
		// A copy in to is now older than from's: gone, so that an
		// instance of the next phase, which reads to first, moves this.
		revoked, err := m.forget(ctx, token)
		if err != nil {
			return false, m.opError("commit: remove the new store's copy", err)
		}
		if revoked {
			// Logged out, and this Commit was in flight: Find never
			// serves the copy, a CachedStore in front keeps none, and the
			// instances of the application before the move, which read
			// from alone, do not get it either.
			return false, deleteCtx(ctx, m.from, token)
		}
		return true, nil
	}
	stored := true
	var err error
	if cs, ok := m.to.(CacheableStore); ok {
		stored, err = cs.CommitStoredCtx(ctx, token, b, expiry)
	} else {
		err = commitCtx(ctx, m.to, token, b, expiry)
	}
	if err != nil || !stored || m.phase == MigrateToOnly {
		return stored, err
	}
	// The old store last, so that it is never newer than the new one
	// while instances of MigrateReadFrom read it.
	return true, commitCtx(ctx, m.from, token, b, expiry)
}

// Delete removes the session from both stores: the new first, so that no
// move brings it back. It calls DeleteCtx with context.Background().
func (m *MigratingStore) Delete(token string) error {
	return m.DeleteCtx(context.Background(), token)
}

// DeleteCtx is like Delete with a context, passed to the stores that take
// one.
func (m *MigratingStore) DeleteCtx(ctx context.Context, token string) error {
	return errors.Join(deleteCtx(ctx, m.to, token), deleteCtx(ctx, m.from, token))
}

// DeleteOwner revokes every session of the owner in the new store, which
// must be an OwnerStore such as a DynamoStore (see
// DynamoStore.DeleteOwner); their copies in the old store are never moved
// in again (see NewMigrating). It returns an error wrapping
// ErrClientMethod when the new store is not an OwnerStore.
func (m *MigratingStore) DeleteOwner(ctx context.Context, owner string) (int, error) {
	return m.DeleteOwnerFunc(ctx, owner, nil)
}

// DeleteOwnerFunc is DeleteOwner that calls fn around each delete, as
// DynamoStore.DeleteOwnerFunc does. It makes the MigratingStore an
// OwnerStore, so that CachedStore.DeleteOwner in front of it drops the
// cached copies.
func (m *MigratingStore) DeleteOwnerFunc(ctx context.Context, owner string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (int, error) {
	owners, ok := m.to.(OwnerStore)
	if !ok {
		return 0, m.opError("delete owner", fmt.Errorf("%w: the new store, a %T, is no OwnerStore", ErrClientMethod, m.to))
	}
	return owners.DeleteOwnerFunc(ctx, owner, fn)
}

// ownerSessions returns the new store as an OwnerSessionStore, or an error
// for op wrapping ErrClientMethod.
func (m *MigratingStore) ownerSessions(op string) (OwnerSessionStore, error) {
	owners, ok := m.to.(OwnerSessionStore)
	if !ok {
		return nil, m.opError(op, fmt.Errorf("%w: the new store, a %T, is no OwnerSessionStore", ErrClientMethod, m.to))
	}
	return owners, nil
}

// OwnerSessions lists the owner's live sessions in the new store (see
// DynamoStore.OwnerSessions); a session not yet moved is only in the old
// one, and not listed. It returns an error wrapping ErrClientMethod when
// the new store is not an OwnerSessionStore.
func (m *MigratingStore) OwnerSessions(ctx context.Context, owner string) ([]OwnerSession, error) {
	owners, err := m.ownerSessions("owner sessions")
	if err != nil {
		return nil, err
	}
	return owners.OwnerSessions(ctx, owner)
}

// CurrentSessionID returns the ID of the request's own session as the new
// store names it (see DynamoStore.CurrentSessionID), or "" when the new
// store is not an OwnerSessionStore.
func (m *MigratingStore) CurrentSessionID(ctx context.Context, sm *scs.SessionManager) string {
	owners, err := m.ownerSessions("current session id")
	if err != nil {
		return ""
	}
	return owners.CurrentSessionID(ctx, sm)
}

// DeleteOwnerSessionFunc revokes one session of the owner in the new
// store, as DynamoStore.DeleteOwnerSessionFunc does. With
// DeleteOwnerExceptFunc and LimitOwnerFunc it makes the MigratingStore an
// OwnerSessionStore, so that a CachedStore in front drops the copies of
// the sessions they revoke; a copy in the old store is never moved in
// again (see NewMigrating).
func (m *MigratingStore) DeleteOwnerSessionFunc(ctx context.Context, owner, id string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (bool, error) {
	owners, err := m.ownerSessions("delete owner session")
	if err != nil {
		return false, err
	}
	return owners.DeleteOwnerSessionFunc(ctx, owner, id, fn)
}

// DeleteOwnerExceptFunc revokes the owner's sessions in the new store but
// one, as DynamoStore.DeleteOwnerExceptFunc does.
func (m *MigratingStore) DeleteOwnerExceptFunc(ctx context.Context, owner, keepID string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (int, error) {
	owners, err := m.ownerSessions("delete owner except")
	if err != nil {
		return 0, err
	}
	return owners.DeleteOwnerExceptFunc(ctx, owner, keepID, fn)
}

// LimitOwnerFunc keeps the owner's keep most recent sessions in the new
// store and revokes the rest, as DynamoStore.LimitOwnerFunc does.
func (m *MigratingStore) LimitOwnerFunc(ctx context.Context, owner string, keep int, fn func(ctx context.Context, token string, del func(context.Context) error) error) (int, error) {
	owners, err := m.ownerSessions("limit owner")
	if err != nil {
		return 0, err
	}
	return owners.LimitOwnerFunc(ctx, owner, keep, fn)
}

// Options returns the new store's options where it is a TableStore (a
// DynamoStore), and zero Options otherwise. It makes the MigratingStore a
// TableStore, so that a CachedStore in front names and keys its copies as
// in front of the new store, hashed where it has Options.HashTokens, as
// the sessions its DeleteOwner revokes are named.
func (m *MigratingStore) Options() Options {
	if ts, ok := m.to.(TableStore); ok {
		return ts.Options()
	}
	return Options{}
}

// All returns the union of both stores' sessions. It calls AllCtx with
// context.Background().
func (m *MigratingStore) All() (map[string][]byte, error) {
	return m.AllCtx(context.Background())
}

// AllCtx is like All with a context, passed to the stores that take one.
// Where both stores hold a token, the one Find reads first wins; so it
// does where the new store has Options.HashTokens and holds the session
// under the hash of the old store's token (its tokens are the hashed keys,
// as it stores them). Sessions
// of the old store past their decoded deadline are left out, and so are
// those the new store holds a revocation for, which costs a read of the
// new store for each session only the old one holds.
func (m *MigratingStore) AllCtx(ctx context.Context) (map[string][]byte, error) {
	first, second := m.to, m.from
	if !m.phase.readsTo() {
		first, second = m.from, m.to
	}
	a, err := allCtx(ctx, first)
	if err != nil {
		return nil, err
	}
	b, err := allCtx(ctx, second)
	if err != nil {
		return nil, err
	}
	all := make(map[string][]byte, len(a)+len(b))
	for _, s := range []map[string][]byte{b, a} { // a last: it wins
		for token, data := range s {
			if deadline, _, err := m.codec.Decode(data); err == nil && deadline.After(time.Now()) {
				all[token] = data
			}
		}
	}
	// A copy that only from holds may be of a session revoked in to,
	// which Find never serves: asked of to, at a read each.
	fromAll, toAll := b, a
	if !m.phase.readsTo() {
		fromAll, toAll = a, b
	}
	hashed := m.Options().HashTokens
	for token := range fromAll {
		if _, live := toAll[token]; live {
			continue
		}
		if hashed {
			// The new store names its sessions by their hashed keys: a
			// session in both is listed once, as Find reads it first.
			if h := sessionitem.HashToken(token); hasKey(toAll, h) {
				if m.phase.readsTo() {
					delete(all, token)
				} else {
					delete(all, h)
				}
				continue
			}
		}
		if _, listed := all[token]; !listed {
			continue
		}
		revoked, err := m.revoked(ctx, token)
		if err != nil {
			return nil, err
		}
		if revoked {
			delete(all, token)
		}
	}
	return all, nil
}

func (m *MigratingStore) opError(op string, err error) error {
	return fmt.Errorf("dynamostore: migrating %s: %w", op, err)
}

func hasKey(m map[string][]byte, k string) bool {
	_, ok := m[k]
	return ok
}

// cacheLayers makes the MigratingStore layered: a CachedStore in front of
// it keys its copies apart from those of a CachedStore it moves to or
// from.
func (m *MigratingStore) cacheLayers() int { return max(cacheLayers(m.from), cacheLayers(m.to)) }

// allCtx iterates s, with a context where it takes one.
func allCtx(ctx context.Context, s scs.Store) (map[string][]byte, error) {
	switch s := s.(type) {
	case scs.IterableCtxStore:
		return s.AllCtx(ctx)
	case scs.IterableStore:
		return s.All()
	}
	return nil, fmt.Errorf("dynamostore: migrating all: a %T cannot be iterated: it has no All method", s)
}

// revoker says whether a token is revoked: the phases that read the old
// store ask the new one.
type revoker interface {
	revokedCtx(ctx context.Context, token string) (bool, error)
}

// revokedCtx reports whether the table holds a revocation in force for
// the token. It costs a read, as Find does.
func (s *DynamoStore) revokedCtx(ctx context.Context, token string) (bool, error) {
	key, ok := s.key(token)
	if !ok {
		return false, nil
	}
	item, err := s.getItem(ctx, opFind, key, s.consistent)
	if err != nil {
		return false, err
	}
	r, ok := item[sessionitem.RevokedAttribute].(*types.AttributeValueMemberN)
	if !ok {
		return false, nil
	}
	until, err := sessionitem.ParseNumber(r.Value)
	return err != nil || until > s.now().UnixMilli(), nil
}

// revokedCtx asks the backing store, where it can say.
func (c *CachedStore) revokedCtx(ctx context.Context, token string) (bool, error) {
	if r, ok := c.backing.(revoker); ok {
		return r.revokedCtx(ctx, token)
	}
	return false, nil
}

// forgetter removes a session's item without revoking its token:
// MigrateReadFrom's removal of the new store's copy.
type forgetter interface {
	forgetCtx(ctx context.Context, token string) (revoked bool, err error)
}

// forgetCtx deletes the session's item unless it is a revocation in
// force, which stays, and reports whether it was one. It costs a write
// unit per KB of the item it deletes, and one when there is none.
func (s *DynamoStore) forgetCtx(ctx context.Context, token string) (bool, error) {
	key, ok := s.key(token)
	if !ok {
		return false, nil
	}
	deleted, err := s.deleteIf(ctx, opDelete, &dynamodb.DeleteItemInput{
		TableName:                s.table,
		Key:                      map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: key}},
		ConditionExpression:      aws.String(notRevoked),
		ExpressionAttributeNames: revokedName,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(s.now().UnixMilli(), 10)},
		},
	})
	return err == nil && !deleted, err
}

// forgetCtx removes the session from the backing store as
// DynamoStore.forgetCtx does (a Delete for another backing store), and
// drops the cached copy.
func (c *CachedStore) forgetCtx(ctx context.Context, token string) (bool, error) {
	key := c.cacheKey(token)
	write, err := c.beginWrite(ctx, key)
	if err != nil {
		return false, c.opError("commit: cache", err)
	}
	defer c.endWrite(ctx, key, write)
	if f, ok := c.backing.(forgetter); ok {
		return f.forgetCtx(ctx, token)
	}
	return false, deleteCtx(ctx, c.backing, token)
}
