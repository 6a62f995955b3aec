package dynamostore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// steppedClock is a store clock two hours ahead of real time (see
// clockAhead), which a test moves on by a second at a time, so that each
// Commit's LastWrite is one the test chose.
type steppedClock struct{ steps atomic.Int64 }

func (c *steppedClock) now() time.Time {
	return time.Now().Add(2*time.Hour + time.Duration(c.steps.Load())*time.Second).Truncate(time.Millisecond)
}

// hooks returns store hooks with c's clock.
func (c *steppedClock) hooks() hooks { return hooks{now: c.now} }

// commitAt commits token with data through s after moving the clock on a
// second, and returns the LastWrite the store recorded.
func commitAt(t *testing.T, s *DynamoStore, c *steppedClock, token, data string, expiry time.Time) time.Time {
	t.Helper()
	c.steps.Add(1)
	if err := s.Commit(token, []byte(data), expiry); err != nil {
		t.Fatal(err)
	}
	w, ok := rawItem(t, s, s.prefix+token)[sessionitem.LastWriteAttribute].(*types.AttributeValueMemberN)
	if !ok {
		t.Fatalf("%s: expected a session with an owner to record its last write", token)
	}
	ms, _ := strconv.ParseInt(w.Value, 10, 64)
	return time.UnixMilli(ms)
}

// waitOwnerSessions polls OwnerSessions until it lists n sessions: the
// owner index is eventually consistent.
func waitOwnerSessions(t *testing.T, s interface {
	OwnerSessions(context.Context, string) ([]OwnerSession, error)
}, owner string, n int) []OwnerSession {
	t.Helper()
	var got []OwnerSession
	var err error
	waitUntil(t, fmt.Sprintf("OwnerSessions to list %d sessions of %s", n, owner), func() bool {
		got, err = s.OwnerSessions(context.Background(), owner)
		return err != nil || len(got) == n
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// tokensOf returns the tokens, under s's KeyPrefix, of the listed sessions,
// found by their IDs among tokens.
func tokensOf(s *DynamoStore, listed []OwnerSession, tokens ...string) []string {
	var got []string
	for _, l := range listed {
		for _, token := range tokens {
			if sessionitem.SessionID(s.prefix+token) == l.ID {
				got = append(got, token)
			}
		}
	}
	return got
}

// TestOwnerSessions: an owner's live sessions, most recently written first,
// each with its data, expiry, last write to the millisecond and size; not
// another owner's, nor an expired one, nor one without an owner, which
// records no last write.
func TestOwnerSessions(t *testing.T) {
	t.Parallel()
	var clock steppedClock
	s := newStoreWith(t, &ownerSpy{Client: newClient(t)}, clock.hooks(), withOwner)
	live := liveAt().Truncate(time.Millisecond)
	wrote := map[string]time.Time{}
	for _, token := range []string{"tokA", "tokC", "tokB"} {
		wrote[token] = commitAt(t, s, &clock, token, "u1|"+token, live)
	}
	commitAt(t, s, &clock, "expired", "u1|old", expiredAt())
	commitAt(t, s, &clock, "other", "u2|x", live)
	wrote["tokA"] = commitAt(t, s, &clock, "tokA", "u1|tokA again", live) // now the newest
	if err := s.Commit("anonymous", []byte("no owner"), live); err != nil {
		t.Fatal(err)
	}
	if _, ok := rawItem(t, s, "anonymous")[sessionitem.LastWriteAttribute]; ok {
		t.Fatal("expected a session without an owner to pay nothing for a last write")
	}
	waitIndexed(t, s, "u1", "expired")
	got := waitOwnerSessions(t, s, "u1", 3)
	if order := tokensOf(s, got, "tokA", "tokB", "tokC"); !slices.Equal(order, []string{"tokA", "tokB", "tokC"}) {
		t.Fatalf("got %v: expected the most recently written first", order)
	}
	for i, token := range []string{"tokA", "tokB", "tokC"} {
		want := "u1|" + token
		if token == "tokA" {
			want = "u1|tokA again"
		}
		g := got[i]
		if string(g.Data) != want || !g.Expiry.Equal(live) || !g.LastWrite.Equal(wrote[token]) {
			t.Errorf("%s: got %q, expiry %v, last write %v: expected %q, %v, %v", token, g.Data, g.Expiry, g.LastWrite, want, live, wrote[token])
		}
		// DynamoDB's rule: names and values in bytes, a number one byte
		// per two digits and one more.
		_, ms := sessionitem.ExpiryValues(live)
		sec, _ := sessionitem.ExpiryValues(live)
		lw := strconv.FormatInt(wrote[token].UnixMilli(), 10)
		size := len("session_key") + len(token) + len("data") + len(want) + len("owner") + len("u1") +
			len("expires") + numberSize(sec) + len("expires_ms") + numberSize(ms) + len(sessionitem.LastWriteAttribute) + numberSize(lw)
		if g.Size != size {
			t.Errorf("%s: got size %d: expected %d", token, g.Size, size)
		}
	}
	if other, err := s.OwnerSessions(context.Background(), "u2"); err != nil || len(other) != 1 || string(other[0].Data) != "u2|x" {
		t.Fatalf("got %v, %v: expected u2's one session", other, err)
	}
	if none, err := s.OwnerSessions(context.Background(), "nobody"); err != nil || none == nil || len(none) != 0 {
		t.Fatalf("got %#v, %v: expected an empty, non-nil list", none, err)
	}
}

// TestOwnerSessionsChangedHands: a session whose owner changed is not
// listed under the old owner, however long the index still lists it there.
func TestOwnerSessionsChangedHands(t *testing.T) {
	t.Parallel()
	spy := &ownerSpy{Client: newClient(t)}
	s := newStore(t, spy, withOwner)
	for _, token := range []string{"stays", "moves"} {
		if err := s.Commit(token, []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	waitOwnerSessions(t, s, "u1", 2)
	// The index still lists "moves" under u1 when the items are read.
	var once sync.Once
	s.batchGet = batchGetFunc(func(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
		var err error
		once.Do(func() { err = s.Commit("moves", []byte("u2|data"), time.Now().Add(time.Hour)) })
		if err != nil {
			return nil, err
		}
		return spy.BatchGetItem(ctx, in, optFns...)
	})
	got, err := s.OwnerSessions(context.Background(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	if tokens := tokensOf(s, got, "stays", "moves"); !slices.Equal(tokens, []string{"stays"}) {
		t.Fatalf("got %v: expected only the session that stayed", tokens)
	}
}

type batchGetFunc func(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)

func (f batchGetFunc) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return f(ctx, in, optFns...)
}

// TestOwnerSessionIDs: a session's ID is the same on every call and on
// every instance, is neither the token nor the key nor holds them, and as
// a token finds nothing.
func TestOwnerSessionIDs(t *testing.T) {
	t.Parallel()
	fns := newTable(t, withOwner, func(o *Options) { o.KeyPrefix = "app:" })
	s1 := NewWithCleanupInterval(newClient(t), 0, fns...)
	s2 := NewWithCleanupInterval(newClient(t), 0, fns...)
	token := "kX3v9QbC0zAqL7mN2pR5sT8wY1uE4iO6aD9fG2hJ5kM"
	if err := s1.Commit(token, []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	first := waitOwnerSessions(t, s1, "u1", 1)[0]
	second := waitOwnerSessions(t, s2, "u1", 1)[0]
	again := waitOwnerSessions(t, s1, "u1", 1)[0]
	if first.ID != second.ID || first.ID != again.ID {
		t.Fatalf("got IDs %q, %q, %q: expected one ID for the session on every call and instance", first.ID, second.ID, again.ID)
	}
	id := first.ID
	if len(id) != 22 || !sessionitem.IsToken(id) {
		t.Fatalf("got ID %q: expected 22 base64url characters", id)
	}
	key := "app:" + token
	for _, secret := range []string{token, key, token[:8], token[len(token)-8:]} {
		if strings.Contains(id, secret) || strings.Contains(secret, id) {
			t.Fatalf("got ID %q: expected it to hold nothing of the token or key %q", id, secret)
		}
	}
	for _, s := range []*DynamoStore{s1, s2} {
		if b, found, err := s.Find(id); found || err != nil {
			t.Fatalf("got %q, %v, %v: expected the ID to be no session's token", b, found, err)
		}
	}
	// Nor is it a cookie, hashed as scs's HashTokenInStore hashes it.
	sum := sha256.Sum256([]byte(id))
	if _, found, _ := s1.Find(base64.RawURLEncoding.EncodeToString(sum[:])); found {
		t.Fatal("expected the ID, hashed as a cookie, to be no session")
	}
	// The same token under another prefix is another session.
	if other := sessionitem.SessionID("other:" + token); other == id {
		t.Fatal("expected the KeyPrefix to be part of the ID")
	}
	if n, err := s2.DeleteOwnerSession(context.Background(), "u1", id); !n || err != nil {
		t.Fatalf("got %v, %v: expected the ID from one instance to revoke on another", n, err)
	}
	mustFind(t, s1, token, "")
}

// devicesApp is a web application with a "your devices" page: scs over
// store, with or without HashTokenInStore. GET /devices lists the user's
// session IDs, "*" before the request's own.
func devicesApp(t *testing.T, store *DynamoStore, hashed bool) *httptest.Server {
	sm := scs.New()
	sm.Store = store
	sm.HashTokenInStore = hashed
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), "user_id", r.PostFormValue("user"))
	})
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		current := store.CurrentSessionID(r.Context(), sm)
		sessions, err := store.OwnerSessions(r.Context(), sm.GetString(r.Context(), "user_id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var lines []string
		for _, s := range sessions {
			mark := " "
			if s.ID == current {
				mark = "*"
			}
			lines = append(lines, mark+s.ID)
		}
		fmt.Fprintf(w, "current=%s\n%s", current, strings.Join(lines, "\n"))
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return srv
}

// TestCurrentSessionID: over HTTP, with and without HashTokenInStore,
// each browser's own session is the one CurrentSessionID names, and a
// request without a session has none.
func TestCurrentSessionID(t *testing.T) {
	t.Parallel()
	for _, hashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("HashTokenInStore=%v", hashed), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, nil, func(o *Options) { o.Owner = SessionValue(scs.GobCodec{}, "user_id") })
			app := devicesApp(t, s, hashed)
			phone, laptop := newBrowser(t), newBrowser(t)
			phone.do(http.MethodPost, app.URL+"/login", url.Values{"user": {"u-5"}})
			laptop.do(http.MethodPost, app.URL+"/login", url.Values{"user": {"u-5"}})
			waitOwnerSessions(t, s, "u-5", 2)
			for _, b := range []*browser{phone, laptop} {
				stored := b.cookie(app)
				if hashed {
					sum := sha256.Sum256([]byte(stored))
					stored = base64.RawURLEncoding.EncodeToString(sum[:])
				}
				want := sessionitem.SessionID(stored)
				page := b.do(http.MethodGet, app.URL+"/devices", nil)
				if !strings.HasPrefix(page, "current="+want+"\n") || !strings.Contains(page, "*"+want) || strings.Count(page, "*") != 1 {
					t.Fatalf("got page %q: expected this browser's session %s marked, and only it", page, want)
				}
				if strings.Count(page, "\n") != 2 {
					t.Fatalf("got page %q: expected two devices", page)
				}
			}
			if page := newBrowser(t).do(http.MethodGet, app.URL+"/devices", nil); !strings.HasPrefix(page, "current=\n") {
				t.Fatalf("got page %q: expected no current session without a cookie", page)
			}
			if id := s.CurrentSessionID(context.Background(), scs.New()); id != "" {
				t.Fatalf("got %q: expected no ID outside a request", id)
			}
			if id := s.CurrentSessionID(context.Background(), nil); id != "" {
				t.Fatalf("got %q: expected no ID without a manager", id)
			}
		})
	}
}

// TestDeleteOwnerSession: a session is revoked by its owner's ID, for
// good; another owner posting the ID, an unknown ID and an empty one
// revoke nothing and get the same answer.
func TestDeleteOwnerSession(t *testing.T) {
	t.Parallel()
	s := newStore(t, &ownerSpy{Client: newClient(t)}, withOwner)
	ctx := context.Background()
	expiry := time.Now().Add(time.Hour)
	for token, data := range map[string]string{"alice1": "u1|a", "alice2": "u1|b", "mallory": "u2|m"} {
		if err := s.Commit(token, []byte(data), expiry); err != nil {
			t.Fatal(err)
		}
	}
	waitOwnerSessions(t, s, "u1", 2)
	waitOwnerSessions(t, s, "u2", 1)
	id := sessionitem.SessionID("alice1")
	for _, c := range []struct{ owner, id string }{{"u2", id}, {"u1", ""}, {"u1", sessionitem.SessionID("nobody")}, {"u1", sessionitem.SessionID("mallory")}, {"", id}} {
		if ok, err := s.DeleteOwnerSession(ctx, c.owner, c.id); ok || err != nil {
			t.Fatalf("owner %q, ID %q: got %v, %v: expected nothing revoked", c.owner, c.id, ok, err)
		}
	}
	mustFind(t, s, "alice1", "u1|a")
	mustFind(t, s, "mallory", "u2|m")
	if ok, err := s.DeleteOwnerSession(ctx, "u1", id); !ok || err != nil {
		t.Fatalf("got %v, %v: expected the session revoked", ok, err)
	}
	mustFind(t, s, "alice1", "")
	mustFind(t, s, "alice2", "u1|b")
	// As final as Delete: a request in flight cannot commit it back.
	if stored, err := s.CommitStoredCtx(ctx, "alice1", []byte("u1|a"), expiry); stored || err != nil {
		t.Fatalf("got %v, %v: expected the revoked session not stored again", stored, err)
	}
	if ok, err := s.DeleteOwnerSession(ctx, "u1", id); ok || err != nil {
		t.Fatalf("got %v, %v: expected a revoked session not revoked twice", ok, err)
	}
}

// TestDeleteOwnerSessionChangedHands: a session that changed hands after
// the index listed it under its old owner is not revoked by the old
// owner's request.
func TestDeleteOwnerSessionChangedHands(t *testing.T) {
	t.Parallel()
	spy := &ownerSpy{Client: newClient(t)}
	s := newStore(t, spy, withOwner)
	if err := s.Commit("moves", []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitOwnerSessions(t, s, "u1", 1)
	var once sync.Once
	spy.beforePut = func(ctx context.Context, in *dynamodb.PutItemInput) error {
		var err error
		if sessionitem.Revoked(in.Item) {
			once.Do(func() { err = s.CommitCtx(ctx, "moves", []byte("u2|data"), time.Now().Add(time.Hour)) })
		}
		return err
	}
	if ok, err := s.DeleteOwnerSession(context.Background(), "u1", sessionitem.SessionID("moves")); ok || err != nil {
		t.Fatalf("got %v, %v: expected nothing revoked", ok, err)
	}
	mustFind(t, s, "moves", "u2|data")
}

// TestDeleteOwnerExcept: every live session of the owner but the one kept
// is revoked, and counted; an expired one is not counted; another owner's
// is kept; an empty keepID is an error that revokes nothing.
func TestDeleteOwnerExcept(t *testing.T) {
	t.Parallel()
	s := newStoreWith(t, &ownerSpy{Client: newClient(t)}, clockAhead, withOwner)
	ctx := context.Background()
	for _, token := range []string{"a", "b", "c"} {
		if err := s.Commit(token, []byte("u1|"+token), liveAt()); err != nil {
			t.Fatal(err)
		}
	}
	for token, data := range map[string]string{"expired": "u1|old", "other": "u2|x"} {
		expiry := liveAt()
		if token == "expired" {
			expiry = expiredAt()
		}
		if err := s.Commit(token, []byte(data), expiry); err != nil {
			t.Fatal(err)
		}
	}
	waitIndexed(t, s, "u1", "expired")
	waitOwnerSessions(t, s, "u1", 3)
	if n, err := s.DeleteOwnerExcept(ctx, "u1", ""); n != 0 || err == nil || !strings.Contains(err.Error(), "keepID is empty") {
		t.Fatalf("got %d, %v: expected an error saying keepID is empty", n, err)
	}
	waitOwnerSessions(t, s, "u1", 3)
	if n, err := s.DeleteOwnerExcept(ctx, "u1", sessionitem.SessionID("b")); n != 2 || err != nil {
		t.Fatalf("got %d, %v: expected the 2 other live sessions revoked", n, err)
	}
	mustFind(t, s, "a", "")
	mustFind(t, s, "c", "")
	mustFind(t, s, "b", "u1|b")
	mustFind(t, s, "other", "u2|x")
	if sessionitem.Revoked(rawItem(t, s, "expired")) {
		t.Fatal("expected the expired session left to the sweeper")
	}
}

// TestLimitOwner: the keep most recently written live sessions stay, the
// rest are revoked and counted; expired sessions count toward neither;
// keep 0 revokes all; a negative keep is an error.
func TestLimitOwner(t *testing.T) {
	t.Parallel()
	var clock steppedClock
	s := newStoreWith(t, &ownerSpy{Client: newClient(t)}, clock.hooks(), withOwner)
	ctx := context.Background()
	// Oldest first: d, a, expired, c, b; then other owners'.
	for _, token := range []string{"d", "a", "expired", "c", "b"} {
		expiry := liveAt()
		if token == "expired" {
			expiry = expiredAt()
		}
		commitAt(t, s, &clock, token, "u1|"+token, expiry)
	}
	commitAt(t, s, &clock, "other", "u2|x", liveAt())
	waitIndexed(t, s, "u1", "expired")
	waitOwnerSessions(t, s, "u1", 4)
	if n, err := s.LimitOwner(ctx, "u1", -1); n != 0 || err == nil || !strings.Contains(err.Error(), "keep is -1") {
		t.Fatalf("got %d, %v: expected an error for a negative keep", n, err)
	}
	if n, err := s.LimitOwner(ctx, "u1", 4); n != 0 || err != nil {
		t.Fatalf("got %d, %v: expected nothing revoked at the limit", n, err)
	}
	if n, err := s.LimitOwner(ctx, "u1", 2); n != 2 || err != nil {
		t.Fatalf("got %d, %v: expected the 2 oldest live sessions revoked", n, err)
	}
	for token, want := range map[string]string{"b": "u1|b", "c": "u1|c", "a": "", "d": "", "other": "u2|x"} {
		mustFind(t, s, token, want)
	}
	if sessionitem.Revoked(rawItem(t, s, "expired")) {
		t.Fatal("expected the expired session left to the sweeper")
	}
	waitOwnerSessions(t, s, "u1", 2)
	if n, err := s.LimitOwner(ctx, "u1", 0); n != 2 || err != nil {
		t.Fatalf("got %d, %v: expected keep 0 to revoke both", n, err)
	}
	mustFind(t, s, "b", "")
	mustFind(t, s, "c", "")
	mustFind(t, s, "other", "u2|x")
}

// TestOwnerSessionsSealed: sealed sessions are listed with their data
// opened, and Reseal keeps their last write; a store without the key (the
// command-line tool's) lists them with nil Data.
func TestOwnerSessionsSealed(t *testing.T) {
	t.Parallel()
	a := newAEAD(t)
	fns := newTable(t, withOwner, withEncryption(a))
	var clock steppedClock
	s := newDynamoStore(newClient(t), 0, clock.hooks(), fns)
	wrote := commitAt(t, s, &clock, "tok", "u1|secret", liveAt())
	// Resealing is no use of the session: its last write stays.
	clock.steps.Add(1)
	if n, err := s.Reseal(context.Background()); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected the session resealed", n, err)
	}
	if _, ok := rawItem(t, s, "tok")["data_sealed"]; !ok {
		t.Fatal("expected the session sealed")
	}
	got := waitOwnerSessions(t, s, "u1", 1)
	if string(got[0].Data) != "u1|secret" || got[0].ID != sessionitem.SessionID("tok") || !got[0].LastWrite.Equal(wrote) {
		t.Fatalf("got %q, %s, %v: expected the data opened, last written %v", got[0].Data, got[0].ID, got[0].LastWrite, wrote)
	}
	keyless := NewWithCleanupInterval(newClient(t), 0, append(fns[:1:1], withOwner, quietLog)...)
	got = waitOwnerSessions(t, keyless, "u1", 1)
	if got[0].Data != nil || got[0].ID != sessionitem.SessionID("tok") || got[0].Size == 0 {
		t.Fatalf("got %q, %s, %d bytes: expected the sealed session listed with nil Data", got[0].Data, got[0].ID, got[0].Size)
	}
}

// TestCachedOwnerSessions: the CachedStore's methods revoke through the
// backing store and drop the cached copies of what they revoke.
func TestCachedOwnerSessions(t *testing.T) {
	t.Parallel()
	var clock steppedClock
	s := newStoreWith(t, &ownerSpy{Client: newClient(t)}, clock.hooks(), withOwner)
	c := NewCached(s)
	ctx := context.Background()
	for _, token := range []string{"a", "b", "c", "d"} {
		clock.steps.Add(1)
		if err := c.Commit(token, []byte("u1|"+token), liveAt()); err != nil {
			t.Fatal(err)
		}
		mustFind(t, c, token, "u1|"+token) // cached
	}
	listed := waitOwnerSessions(t, c, "u1", 4)
	if order := tokensOf(s, listed, "a", "b", "c", "d"); !slices.Equal(order, []string{"d", "c", "b", "a"}) {
		t.Fatalf("got %v: expected the newest first", order)
	}
	if ok, err := c.DeleteOwnerSession(ctx, "u1", sessionitem.SessionID("a")); !ok || err != nil {
		t.Fatalf("got %v, %v: expected a revoked", ok, err)
	}
	mustFind(t, c, "a", "")
	waitOwnerSessions(t, c, "u1", 3)
	if n, err := c.LimitOwner(ctx, "u1", 2); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected b revoked", n, err)
	}
	mustFind(t, c, "b", "")
	waitOwnerSessions(t, c, "u1", 2)
	if n, err := c.DeleteOwnerExcept(ctx, "u1", sessionitem.SessionID("d")); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected c revoked", n, err)
	}
	mustFind(t, c, "c", "")
	mustFind(t, c, "d", "u1|d")
	if stats := c.Stats(); stats.Hits == 0 {
		t.Fatalf("got %+v: expected the sessions served from the cache before", stats)
	}

	plain := NewCached(plainBacking{s}, func(o *CacheOptions) { o.Logger = slog.New(slog.DiscardHandler) })
	if _, err := plain.OwnerSessions(ctx, "u1"); !errors.Is(err, ErrClientMethod) {
		t.Fatalf("got %v: expected ErrClientMethod", err)
	}
	if _, err := plain.LimitOwner(ctx, "u1", 1); !errors.Is(err, ErrClientMethod) {
		t.Fatalf("got %v: expected ErrClientMethod", err)
	}
	if _, err := plain.DeleteOwnerExcept(ctx, "u1", "x"); !errors.Is(err, ErrClientMethod) {
		t.Fatalf("got %v: expected ErrClientMethod", err)
	}
	if _, err := plain.DeleteOwnerSession(ctx, "u1", "x"); !errors.Is(err, ErrClientMethod) {
		t.Fatalf("got %v: expected ErrClientMethod", err)
	}
}

// TestRevokeOthersWithRequestInFlight: a request of another device that
// loaded its session before "log out other devices" (DeleteOwnerExcept)
// or a cap (LimitOwner) on another instance commits it when it ends; the
// revoked device stays logged out on both instances, and the device that
// revoked stays logged in.
func TestRevokeOthersWithRequestInFlight(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"/logout-others", "/limit-one"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			app1, app2, store := twoInstances(t)
			_, old := request(t, http.MethodPost, app1.URL+"/login", "", url.Values{"user": {"u-4"}})
			waitOwnerSessions(t, store, "u-4", 1)
			_, kept := request(t, http.MethodPost, app2.URL+"/login", "", url.Values{"user": {"u-4"}})
			waitOwnerSessions(t, store, "u-4", 2)

			held := make(chan string)
			go func() {
				body, _ := request(t, http.MethodGet, app1.URL+"/hold", old, nil)
				held <- body
			}()
			waitChan(t, app1.reached, "the held request to load the session")
			if got, _ := request(t, http.MethodPost, app2.URL+how, kept, nil); got != "1" {
				t.Fatalf("got %q: expected 1 session revoked", got)
			}
			close(app1.release)
			waitChan(t, held, "the held request to end")

			for _, app := range []*heldApp{app1, app2, app1} {
				if got, _ := request(t, http.MethodGet, app.URL+"/whoami", old, nil); got != "/0" {
					t.Fatalf("got %q: expected the other device logged out on both instances", got)
				}
				if got, _ := request(t, http.MethodGet, app.URL+"/whoami", kept, nil); got != "u-4/0" {
					t.Fatalf("got %q: expected the device that revoked still logged in", got)
				}
			}
			if listed := waitOwnerSessions(t, store, "u-4", 1); len(listed) != 1 {
				t.Fatalf("got %v: expected one live session of the user", listed)
			}
		})
	}
}

// unitsClient asks DynamoDB for the read capacity of every Query and
// BatchGetItem, and adds it up.
type unitsClient struct {
	*dynamodb.Client
	mu    sync.Mutex
	units float64
}

func (c *unitsClient) add(cc ...types.ConsumedCapacity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range cc {
		c.units += aws.ToFloat64(u.CapacityUnits)
	}
}

func (c *unitsClient) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	copied := *in
	copied.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.Query(ctx, &copied, optFns...)
	if err == nil && out.ConsumedCapacity != nil {
		c.add(*out.ConsumedCapacity)
	}
	return out, err
}

func (c *unitsClient) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	copied := *in
	copied.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.BatchGetItem(ctx, &copied, optFns...)
	if err == nil {
		c.add(out.ConsumedCapacity...)
	}
	return out, err
}

func (c *unitsClient) take() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.units
	c.units = 0
	return u
}

// TestOwnerSessionsCost measures what listing costs a user with 5 and with
// 100 sessions of 2 KB, the figures in the README's "Your devices": one
// Query of the index (half a unit per 4 KB of keys) and one strongly
// consistent read per session of up to 4 KB. Run it with -v to see them.
func TestOwnerSessionsCost(t *testing.T) {
	t.Parallel()
	client := &unitsClient{Client: newClient(t)}
	s := newStore(t, client, withOwner)
	data := "u1|" + strings.Repeat("x", 2048)
	for n, want := range map[int]float64{5: 5.5, 100: 101} {
		owner := "user" + strconv.Itoa(n)
		for i := range n {
			// A token as long as scs's, 43 characters.
			token := fmt.Sprintf("%043d", n*1000+i)
			if err := s.Commit(token, []byte(owner+data[2:]), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		waitOwnerSessions(t, s, owner, n)
		client.take()
		if _, err := s.OwnerSessions(context.Background(), owner); err != nil {
			t.Fatal(err)
		}
		got := client.take()
		t.Logf("OwnerSessions of a user with %d sessions of 2 KB: %.1f read units", n, got)
		if got != want {
			t.Errorf("got %.1f read units for %d sessions: expected %.1f", got, n, want)
		}
	}
}

// TestOwnerIndexLag measures how long after a Commit returns the owner
// index lets OwnerSessions list the session, over 200 sessions, the
// figures in the README's "Your devices"; it asserts only that each is
// listed at last. Run it with -v to see the distribution.
func TestOwnerIndexLag(t *testing.T) {
	t.Parallel()
	s := newStore(t, &ownerSpy{Client: newClient(t)}, withOwner)
	const trials = 200
	lags := make([]time.Duration, 0, trials)
	polls := 0
	for i := range trials {
		owner := "lag" + strconv.Itoa(i)
		if err := s.Commit("token"+strconv.Itoa(i), []byte(owner+"|data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		waitUntil(t, "the session listed", func() bool {
			polls++
			listed, err := s.OwnerSessions(context.Background(), owner)
			if err != nil {
				t.Fatal(err)
			}
			return len(listed) == 1
		})
		lags = append(lags, time.Since(committed))
	}
	slices.Sort(lags)
	t.Logf("index lag over %d sessions (%d listings): p50 %v, p99 %v, max %v",
		trials, polls, lags[trials/2], lags[trials*99/100], lags[trials-1])
}

// TestLimitOwnerWrittenMeanwhile: a session that LimitOwner listed among
// those to revoke, and that a request commits again before its revocation
// is sent, is now the most recent: it stays, and is not counted.
func TestLimitOwnerWrittenMeanwhile(t *testing.T) {
	t.Parallel()
	var clock steppedClock
	s := newStoreWith(t, newClient(t), clock.hooks(), withOwner)
	ctx := context.Background()
	commitAt(t, s, &clock, "a", "u1|a", liveAt())
	commitAt(t, s, &clock, "b", "u1|b", liveAt())
	waitOwnerSessions(t, s, "u1", 2)
	var wrote time.Time
	n, err := s.LimitOwnerFunc(ctx, "u1", 1, func(ctx context.Context, token string, del func(context.Context) error) error {
		if token != "a" {
			t.Errorf("got %q to revoke: expected a, the older", token)
		}
		wrote = commitAt(t, s, &clock, "a", "u1|a again", liveAt()) // a request in flight commits it
		return del(ctx)
	})
	if n != 0 || err != nil {
		t.Fatalf("got %d, %v: expected nothing revoked, a having been written since it was listed", n, err)
	}
	mustFind(t, s, "a", "u1|a again")
	mustFind(t, s, "b", "u1|b")
	listed := waitOwnerSessions(t, s, "u1", 2)
	if got := tokensOf(s, listed, "a", "b"); !slices.Equal(got, []string{"a", "b"}) || !listed[0].LastWrite.Equal(wrote) {
		t.Fatalf("got %v, %v: expected a listed first, written at %v", got, listed[0].LastWrite, wrote)
	}
	// Once listed as it is, LimitOwner revokes the older, b.
	if n, err := s.LimitOwner(ctx, "u1", 1); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected b revoked", n, err)
	}
	mustFind(t, s, "b", "")
	mustFind(t, s, "a", "u1|a again")
}

// TestLimitOwnerZeroWrittenMeanwhile: keep 0 keeps nothing, however
// recent: a session committed between the listing and its revocation is
// revoked all the same (one stolen cookie in busy use survives no cap of 1).
func TestLimitOwnerZeroWrittenMeanwhile(t *testing.T) {
	t.Parallel()
	var clock steppedClock
	s := newStoreWith(t, newClient(t), clock.hooks(), withOwner)
	commitAt(t, s, &clock, "a", "u1|a", liveAt())
	waitOwnerSessions(t, s, "u1", 1)
	n, err := s.LimitOwnerFunc(context.Background(), "u1", 0, func(ctx context.Context, token string, del func(context.Context) error) error {
		commitAt(t, s, &clock, token, "u1|busy", liveAt()) // a request in flight commits it
		return del(ctx)
	})
	if n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected the session revoked", n, err)
	}
	mustFind(t, s, "a", "")
}
