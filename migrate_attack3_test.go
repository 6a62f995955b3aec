package dynamostore

// The third attack review of issue #26 ("move in without logging anyone
// out"). A test named TestAttack3... that fails shows a break of a promise
// the README or godoc makes; one named TestAttack3Holds... is an attack
// that held. No message names a token, a stored key or session data.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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

func newA3Client(t *testing.T) *gatedClient { return &gatedClient{Client: newClient(t)} }

// a3Token returns a token as scs makes them: 32 random bytes, base64url
// without padding, 43 characters, as long as a hashed token.
func a3Token(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// a3Data returns session data as scs's GobCodec encodes it, for user
// alice, with value v, and a deadline an hour ahead.
func a3Data(t *testing.T, v string) []byte {
	t.Helper()
	return a3DataUntil(t, v, time.Now().Add(time.Hour))
}

func a3DataUntil(t *testing.T, v string, deadline time.Time) []byte {
	t.Helper()
	b, err := scs.GobCodec{}.Encode(deadline, map[string]any{"user_id": "alice", "v": v})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// a3Find returns the value v of the session s finds for token.
func a3Find(t *testing.T, s scs.Store, token string) (string, bool) {
	t.Helper()
	b, found, err := s.Find(token)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if !found {
		return "", false
	}
	_, values, err := scs.GobCodec{}.Decode(b)
	if err != nil {
		t.Fatalf("Find: data that does not decode: %v", err)
	}
	v, _ := values["v"].(string)
	return v, true
}

// a3Want fails unless s finds v for token ("" for no session).
func a3Want(t *testing.T, what string, s scs.Store, token, want string) {
	t.Helper()
	got, found := a3Find(t, s, token)
	switch {
	case want == "" && found:
		t.Errorf("%s: served the session (v%s): expected none", what, got)
	case want != "" && !found:
		t.Errorf("%s: no session: expected v%s", what, want)
	case got != want:
		t.Errorf("%s: served v%s: expected v%s", what, got, want)
	}
}

func a3Commit(t *testing.T, s scs.Store, token, v string) {
	t.Helper()
	if err := s.Commit(token, a3Data(t, v), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func a3Phase(from, to scs.Store, p MigratePhase, optFns ...func(*MigrateOptions)) *MigratingStore {
	return NewMigrating(from, to, scs.GobCodec{}, append([]func(*MigrateOptions){func(o *MigrateOptions) { o.Phase = p }}, optFns...)...)
}

// TestAttack3FallbackBesideHashTokenInStore: the last deploys of the move
// to hashed tokens. Items that scs's HashTokenInStore writes through a
// store without HashTokens carry no key_hashed mark, so an instance with
// ClearTokenFallback beside one of them would take a stored key, sent as
// the cookie by a reader of the table, for a clear token, move the session
// and serve it (the third attack review found the README's recipe allowed
// this). The README turns the fallback off in a deploy of its own first:
// an instance with HashTokens alone beside one on HashTokenInStore serves
// a stored key to no one, and the user stays logged in on both.
func TestAttack3FallbackBesideHashTokenInStore(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		before func(*Options)
		hazard bool
	}{
		{"HashTokens beside HashTokenInStore", hashTokens, false},
		{"ClearTokenFallback beside HashTokenInStore, the deploy skipped", clearFallback, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			open := sharedTable(t)
			lastApp := hashApp(t, open(nil, hooks{}), true)              // sessionManager.HashTokenInStore
			beforeApp := hashApp(t, open(nil, hooks{}, c.before), false) // the deploy before, still rolling out
			victim := newBrowser(t)
			stored := sessionitem.HashToken(login(t, victim, lastApp, "victim")) // the key a reader of the table sees
			attacker := newBrowser(t)
			attacker.client.Jar.SetCookies(mustParse(t, beforeApp.URL), []*http.Cookie{{Name: "session", Value: stored}})
			got := attacker.do(http.MethodGet, beforeApp.URL+"/", nil)
			if c.hazard {
				if got != "user=victim" {
					t.Fatalf("got %q: expected the hazard the README's separate deploy is for", got)
				}
				return
			}
			if got != "user=" {
				t.Errorf("a stored key sent as the cookie: got %q: expected nobody logged in", got)
			}
			for _, app := range []*httptest.Server{lastApp, beforeApp} {
				if got := victim.do(http.MethodGet, app.URL+"/", nil); got != "user=victim" {
					t.Errorf("the victim after: got %q: expected still logged in on both deploys", got)
				}
			}
		})
	}
}

// TestAttack3StrippedMarkerSealed: SECURITY.md says a writer of the table
// who holds no key cannot, under Encryption and RequireEncryption, plant a
// session or move a ciphertext to another key. A writer removes the
// key_hashed marker from a hashed item and sends the stored key as the
// cookie: the seal binds the marker, so the fallback cannot open the item
// and serves nothing. (Found by the third attack review, when the marker
// was not bound.)
func TestAttack3StrippedMarkerSealed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, withEncryption(newAEAD(t)), func(o *Options) { o.RequireEncryption = true })
	s := open(nil, hooks{}, clearFallback)
	tok := a3Token(t)
	a3Commit(t, s, tok, "1")
	stored := sessionitem.HashToken(tok)
	if _, err := newClient(t).UpdateItem(ctx, &dynamodb.UpdateItemInput{ // the writer's one request
		TableName:                aws.String(s.tableName),
		Key:                      map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: stored}},
		UpdateExpression:         aws.String("REMOVE #h"),
		ExpressionAttributeNames: map[string]string{"#h": sessionitem.HashedKeyAttribute},
	}); err != nil {
		t.Fatal(err)
	}
	a3Want(t, "the stored key, its marker removed, sent as the cookie", s, stored, "")
	// The mark is bound by the seal: the item the writer changed opens for
	// no one, as one whose expiry or owner was changed (a writer could as
	// well delete it).
	a3Want(t, "the user after", s, tok, "")
}

// TestAttack3Reseal: Reseal rewrites every session through encode, which
// sets key_hashed by the resealing store's HashTokens, not by what the
// item was. From a store with HashTokens (the README recommends turning
// on both Encryption and hashed tokens; Reseal seals the rest "after
// turning Encryption on"), every session not moved yet is marked, and the
// fallback never moves it: all those users are logged out. From a store
// without HashTokens (the last deploy's, or any instance rotating keys),
// every moved session loses its marker, and a stored key is a cookie again
// for an instance on the fallback.
func TestAttack3Reseal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("from a store with HashTokens", func(t *testing.T) {
		t.Parallel()
		a := newAEAD(t)
		open := sharedTable(t)
		old := open(nil, hooks{})
		tok := a3Token(t)
		a3Commit(t, old, tok, "1") // before the deploy with the fallback
		s := open(nil, hooks{}, clearFallback, withEncryption(a))
		if n, err := s.Reseal(ctx); err != nil || n != 1 {
			t.Fatalf("Reseal = %d, %v: expected 1", n, err)
		}
		a3Want(t, "a session not moved yet, after Reseal", s, tok, "1")
	})
	t.Run("from a store without HashTokens", func(t *testing.T) {
		t.Parallel()
		open := sharedTable(t, withEncryption(newAEAD(t)))
		s := open(nil, hooks{}, clearFallback)
		tok := a3Token(t)
		a3Commit(t, s, tok, "1")
		if n, err := open(nil, hooks{}).Reseal(ctx); err != nil || n != 1 {
			t.Fatalf("Reseal = %d, %v: expected 1", n, err)
		}
		a3Want(t, "the stored key sent as the cookie, after Reseal", s, sessionitem.HashToken(tok), "")
		a3Want(t, "the user after", s, tok, "1")
	})
}

// TestAttack3ClearRevocationBypassed: a store with HashTokens and
// ClearTokenFallback would refuse a move (CommitNewCtx) only on what its
// hashed key holds, and not see a revocation, or newer data, under the
// clear key: a MigratingStore moving from an old store a team still keeps
// would bring back a session DeleteOwner logged out, and Import would
// shadow a user's newer data (the third attack review). Both refuse such a
// store, before any request: one move at a time.
func TestAttack3ClearRevocationBypassed(t *testing.T) {
	t.Parallel()
	open := sharedTable(t)
	hashed := open(nil, hooks{}, clearFallback)
	from := memstore.NewWithCleanupInterval(0)
	for name, to := range map[string]scs.Store{"the store": hashed, "a CachedStore in front": NewCached(hashed)} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "ClearTokenFallback") {
					t.Errorf("NewMigrating to %s with the fallback: got %v: expected a panic naming ClearTokenFallback", name, r)
				}
			}()
			a3Phase(from, to, MigrateToOnly)
		}()
	}
	tok := a3Token(t)
	a3Commit(t, from, tok, "1")
	if n, err := hashed.Import(context.Background(), from, scs.GobCodec{}); err == nil || n != 0 || !strings.Contains(err.Error(), "ClearTokenFallback") {
		t.Errorf("Import into a store with the fallback: got %d, %v: expected an error naming ClearTokenFallback", n, err)
	}
	if got := itemKind(t, hashed, sessionitem.HashToken(tok)); got != noItem {
		t.Errorf("got %s under the hashed key: expected nothing written", got)
	}
}

// TestAttack3ImportThroughCache: Import refuses its own table only when
// the store it imports from is a TableStore; a CachedStore in front of
// one (as an application's sessionManager.Store often is) is none. So
// Import on the hashed-token move, from the clear store behind its cache,
// lists the hashed items as tokens and copies each under the hash of its
// stored key: the stored key, which a reader of the table sees, is now a
// cookie for the session.
func TestAttack3ImportThroughCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t)
	hashed := open(nil, hooks{}, clearFallback)
	tok := a3Token(t)
	a3Commit(t, hashed, tok, "1")
	n, err := hashed.Import(ctx, NewCached(open(nil, hooks{})), scs.GobCodec{})
	if err == nil {
		t.Errorf("Import from a CachedStore on its own table wrote %d: expected it refused", n)
	}
	a3Want(t, "the stored key sent as the cookie", hashed, sessionitem.HashToken(tok), "")
}

// TestAttack3ReadFromRevokedCommitToOldApp: deploy 1 runs beside the
// application before the move, which reads the old store only. A logout
// on a deploy-1 instance revokes the token in the new store and deletes
// the old store's copy; a request in flight since before it commits on a
// deploy-1 instance, which writes the old store, learns from the new one
// that the token is revoked (forget), and leaves the copy there: the
// instances before the move serve the logged-out session. (No worse than
// the old store alone, but the deploy-1 instance knew.)
func TestAttack3ReadFromRevokedCommitToOldApp(t *testing.T) {
	t.Parallel()
	from := memstore.NewWithCleanupInterval(0)
	readFrom := a3Phase(from, newStore(t, nil), MigrateReadFrom)
	tok := a3Token(t)
	a3Commit(t, readFrom, tok, "1")
	if err := readFrom.Delete(tok); err != nil {
		t.Fatal(err)
	}
	a3Commit(t, readFrom, tok, "2") // a request in flight since before the logout
	a3Want(t, "deploy 1", readFrom, tok, "")
	a3Want(t, "the application before the move, beside deploy 1", from, tok, "")
}

// TestAttack3CachedDevices: behind NewCached(NewMigrating(...)), as the
// README says to put a cache, the "your devices" methods fail with
// ErrClientMethod (a MigratingStore is no OwnerSessionStore), so the page
// and its buttons call the DynamoStore, around the cache, which serves the
// revoked session's copy for up to MaxStale.
func TestAttack3CachedDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dyn := newStore(t, nil, sessionOwner)
	cached := NewCached(a3Phase(memstore.NewWithCleanupInterval(0), dyn, MigrateToOnly), func(o *CacheOptions) { o.MaxStale = time.Hour })
	tok := a3Token(t)
	a3Commit(t, cached, tok, "1")
	waitOwnerTokens(t, dyn, "alice", []string{tok})
	sessions, err := dyn.OwnerSessions(ctx, "alice")
	if err != nil || len(sessions) != 1 {
		t.Fatalf("OwnerSessions: %d sessions, %v", len(sessions), err)
	}
	if _, err := cached.DeleteOwnerSession(ctx, "alice", sessions[0].ID); err != nil {
		t.Errorf("DeleteOwnerSession through the cache: %v", err)
		if ok, err := dyn.DeleteOwnerSession(ctx, "alice", sessions[0].ID); err != nil || !ok {
			t.Fatalf("DeleteOwnerSession on the new store = %v, %v", ok, err)
		}
	}
	a3Want(t, "through the cache after the device was logged out", cached, tok, "")
}

// heldFind is an old store whose Find runs after, once, when the read
// has returned and before the MigratingStore goes on: another instance's
// whole request in between.
type heldFind struct {
	*memstore.MemStore
	mu    sync.Mutex
	after func()
}

func (h *heldFind) Find(token string) ([]byte, bool, error) {
	b, found, err := h.MemStore.Find(token)
	h.mu.Lock()
	fn := h.after
	h.after = nil
	h.mu.Unlock()
	if fn != nil {
		fn()
	}
	return b, found, err
}

// TestAttack3HoldsReadFromFindVsLogout (holds): deploys 1 and 2, and 2 and
// 3. A Find that reads the old store is held after its read while another
// instance logs the user out (Delete, DeleteOwner, or scs's RenewToken:
// Delete, then a Commit of a new token) and returns: the held Find serves
// nothing, nor does any phase after.
func TestAttack3HoldsReadFromFindVsLogout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, held := range []MigratePhase{MigrateReadFrom, MigrateWriteBoth, MigrateReadTo} {
		for _, logout := range []string{"Delete", "DeleteOwner", "RenewToken"} {
			t.Run(held.String()+"/"+logout, func(t *testing.T) {
				t.Parallel()
				if held == MigrateReadTo && logout == "DeleteOwner" {
					t.Skip("DeleteOwner reaches only what the new store holds (documented)")
				}
				from := &heldFind{MemStore: memstore.NewWithCleanupInterval(0)}
				dyn := newStore(t, nil, sessionOwner)
				writeBoth := a3Phase(from, dyn, MigrateWriteBoth)
				tok := a3Token(t)
				if held == MigrateReadTo {
					a3Commit(t, from, tok, "1") // only the old store holds it: the Find moves it
				} else {
					a3Commit(t, writeBoth, tok, "1")
					waitOwnerTokens(t, dyn, "alice", []string{tok})
				}
				from.after = func() {
					switch logout {
					case "Delete":
						if err := writeBoth.Delete(tok); err != nil {
							t.Error(err)
						}
					case "DeleteOwner":
						if n, err := writeBoth.DeleteOwner(ctx, "alice"); err != nil || n != 1 {
							t.Errorf("DeleteOwner = %d, %v", n, err)
						}
					case "RenewToken":
						if err := writeBoth.Delete(tok); err != nil {
							t.Error(err)
						}
						a3Commit(t, writeBoth, a3Token(t), "1")
					}
				}
				a3Want(t, "the held Find", a3Phase(from, dyn, held), tok, "")
				from.mu.Lock()
				ran := from.after == nil
				from.mu.Unlock()
				if !ran {
					t.Fatal("the logout never ran amid the Find")
				}
				for _, p := range []MigratePhase{MigrateReadFrom, MigrateWriteBoth, MigrateReadTo, MigrateToOnly} {
					a3Want(t, p.String()+" after", a3Phase(from.MemStore, dyn, p), tok, "")
				}
			})
		}
	}
}

// TestAttack3HoldsFallbackDeleteAmidMove (holds): a move held after it
// stored the hashed copy, before it revokes the clear key, while another
// new instance's Delete returns: the held Find serves nothing, both keys
// are revoked, and an instance on the old deploy finds nothing.
func TestAttack3HoldsFallbackDeleteAmidMove(t *testing.T) {
	t.Parallel()
	open := sharedTable(t)
	old := open(nil, hooks{})
	c := newA3Client(t)
	mover, other := open(c, hooks{}, clearFallback), open(nil, hooks{}, clearFallback)
	tok := a3Token(t)
	a3Commit(t, old, tok, "1")
	reached, release := c.holdFirst(revocationPutOf(tok))
	t.Cleanup(release)
	found := make(chan bool, 1)
	go func() {
		_, ok, err := mover.Find(tok)
		found <- ok || err != nil
	}()
	waitChan(t, reached, "the move's revocation of the clear key")
	if err := other.Delete(tok); err != nil {
		t.Fatal(err)
	}
	release()
	if waitChan(t, found, "the held Find") {
		t.Error("the held Find served the session (or failed) after the Delete returned")
	}
	wantKinds(t, mover, tok, revokedItem, revokedItem)
	a3Want(t, "the old deploy", old, tok, "")
	a3Want(t, "the new deploy", mover, tok, "")
}

// TestAttack3HoldsOddTokens (holds): tokens no scs would send (empty, the
// sweeper lease's key, another prefix's key, too long, not UTF-8, a hashed
// key of a revocation) find nothing, panic nowhere, and Commit's errors
// name none of them, through a store with a KeyPrefix, HashTokens and the
// fallback, and through a MigratingStore of each phase in front of it.
func TestAttack3HoldsOddTokens(t *testing.T) {
	t.Parallel()
	open := sharedTable(t, func(o *Options) { o.KeyPrefix = "app:" })
	s := open(nil, hooks{}, clearFallback)
	other := open(nil, hooks{}, func(o *Options) { o.KeyPrefix = "other:" })
	tok := a3Token(t)
	a3Commit(t, other, tok, "1") // another application's session, same token
	revoked := a3Token(t)
	a3Commit(t, s, revoked, "1")
	if err := s.Delete(revoked); err != nil {
		t.Fatal(err)
	}
	// Committed too, but for the last: a valid token the store would keep.
	odd := []string{"", sessionitem.LeaseToken, "app:" + tok, "other:" + tok, strings.Repeat("a", 3000), "\xff\xfe", "a b", sessionitem.HashToken(revoked)}
	stores := map[string]scs.Store{"DynamoStore": s}
	for _, p := range []MigratePhase{MigrateReadFrom, MigrateWriteBoth, MigrateReadTo, MigrateToOnly} {
		// NewMigrating refuses a new store with the fallback.
		stores[p.String()] = a3Phase(memstore.NewWithCleanupInterval(0), open(nil, hooks{}, hashTokens), p)
	}
	for name, st := range stores {
		for i, token := range odd {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("%s: odd token %d: panic", name, i)
					}
				}()
				if _, found, err := st.Find(token); found || err != nil {
					t.Errorf("%s: odd token %d: Find = found %v, error %v: expected nothing", name, i, found, err != nil)
				}
				if i == len(odd)-1 {
					return
				}
				if err := st.Commit(token, a3Data(t, "x"), time.Now().Add(time.Hour)); err != nil && token != "" && strings.Contains(err.Error(), token) {
					t.Errorf("%s: odd token %d: Commit's error names the token", name, i)
				}
			}()
		}
	}
	a3Want(t, "the other prefix's session after", other, tok, "1")
}

// TestAttack3HoldsDeadlines (holds): a copy in the old store past its
// decoded deadline (the old store's own expiry still ahead) is neither
// moved, imported nor served; a moved or imported session expires at its
// decoded deadline, or IdleTimeout from the move when earlier, never
// later; the fallback's move keeps the expiry to the millisecond.
func TestAttack3HoldsDeadlines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	expiryMs := func(t *testing.T, s *DynamoStore, key string) int64 {
		t.Helper()
		ms, err := sessionitem.ExpiryMillis(rawItem(t, s, key), s.expiryAttr)
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	from := memstore.NewWithCleanupInterval(0)
	dyn := newStore(t, nil)
	past, soon, late := a3Token(t), a3Token(t), a3Token(t)
	if err := from.Commit(past, a3DataUntil(t, "1", time.Now().Add(-time.Minute)), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	soonDeadline := time.Now().Add(30 * time.Minute)
	if err := from.Commit(soon, a3DataUntil(t, "1", soonDeadline), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := from.Commit(late, a3DataUntil(t, "1", time.Now().Add(3*time.Hour)), time.Now().Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []MigratePhase{MigrateReadFrom, MigrateWriteBoth, MigrateReadTo, MigrateToOnly} {
		a3Want(t, p.String()+": past its deadline", a3Phase(from, dyn, p), past, "")
	}
	m := a3Phase(from, dyn, MigrateToOnly, func(o *MigrateOptions) { o.IdleTimeout = time.Hour })
	a3Want(t, "moved", m, soon, "1")
	if got := expiryMs(t, dyn, soon); got != soonDeadline.UnixMilli() {
		t.Errorf("moved with an expiry %d ms from its deadline: expected the deadline", got-soonDeadline.UnixMilli())
	}
	before := time.Now()
	a3Want(t, "moved", m, late, "1")
	if got := expiryMs(t, dyn, late); got > time.Now().Add(time.Hour).UnixMilli() || got < before.Add(time.Hour).UnixMilli() {
		t.Errorf("moved with an expiry %v from now: expected IdleTimeout", time.Until(time.UnixMilli(got)))
	}
	imp := newStore(t, nil)
	var final ImportProgress
	if n, err := imp.Import(ctx, from, scs.GobCodec{}, func(o *ImportOptions) { o.Progress = func(p ImportProgress) { final = p } }); err != nil || n != 2 || final.Expired != 1 {
		t.Errorf("Import = %d, %v, %+v: expected 2 written, 1 expired", n, err, final)
	}
	if got := expiryMs(t, imp, soon); got != soonDeadline.UnixMilli() {
		t.Errorf("imported with an expiry %d ms from its deadline: expected the deadline", got-soonDeadline.UnixMilli())
	}

	open := sharedTable(t)
	tok := a3Token(t)
	at := time.Now().Add(40 * time.Minute).Truncate(time.Millisecond).Add(123 * time.Millisecond)
	if err := open(nil, hooks{}).Commit(tok, a3Data(t, "1"), at); err != nil {
		t.Fatal(err)
	}
	s := open(nil, hooks{}, clearFallback)
	a3Want(t, "the fallback's move", s, tok, "1")
	if got := expiryMs(t, s, sessionitem.HashToken(tok)); got != at.UnixMilli() {
		t.Errorf("the fallback moved it with an expiry %d ms from the clear one's", got-at.UnixMilli())
	}
}

// failingGets is a Client whose GetItem fails with an error of its own.
type failingGets struct{ *dynamodb.Client }

var errA3Down = errors.New("the service is unavailable")

func (failingGets) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, errA3Down
}

// TestAttack3HoldsNoSecretsInErrors (holds): the errors of a MigratingStore
// whose new store fails, and the warning of a move whose revocation of
// the clear key failed, name no token, stored key, owner or data.
func TestAttack3HoldsNoSecretsInErrors(t *testing.T) {
	t.Parallel()
	tok := a3Token(t)
	secrets := []string{tok, sessionitem.HashToken(tok), "alice"}
	wantClean := func(t *testing.T, what, s string) {
		t.Helper()
		for i, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s holds secret %d", what, i)
			}
		}
	}
	from := memstore.NewWithCleanupInterval(0)
	a3Commit(t, from, tok, "1")
	down := newStore(t, failingGets{newClient(t)}, sessionOwner, hashTokens)
	for _, p := range []MigratePhase{MigrateReadFrom, MigrateWriteBoth, MigrateReadTo, MigrateToOnly} {
		_, _, err := a3Phase(from, down, p).Find(tok)
		if !errors.Is(err, errA3Down) {
			t.Errorf("%v: Find = %v: expected the new store's error", p, err)
		}
		if err != nil {
			wantClean(t, p.String()+": Find's error", err.Error())
		}
	}

	var log syncBuffer
	open := sharedTable(t, sessionOwner)
	a3Commit(t, open(nil, hooks{}), tok, "1")
	s := open(&revocationFails{gatedClient: newA3Client(t)}, hooks{}, clearFallback, withLogger(&log))
	a3Want(t, "the move", s, tok, "1")
	log.waitFor(t, "could not be revoked")
	wantClean(t, "the log", log.String())
}

// revocationFails fails every PutItem of a revocation.
type revocationFails struct{ *gatedClient }

func (r *revocationFails) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if sessionitem.Revoked(in.Item) {
		return nil, errA3Down
	}
	return r.gatedClient.PutItem(ctx, in, optFns...)
}
