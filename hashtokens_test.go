package dynamostore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// hashTokens and clearFallback are the options of a store that hashes
// tokens, without and with the fallback to clear tokens.
func hashTokens(o *Options) { o.HashTokens = true }

func clearFallback(o *Options) { o.HashTokens, o.ClearTokenFallback = true, true }

// sharedTable makes a table of the test's own, with optFns, and returns a
// function that opens a store on it without a sweeper: through client (a
// new one when nil), with hooks h and the options more. Every store of a
// test, on the old deploy or the new, is on the same table.
func sharedTable(t *testing.T, optFns ...func(*Options)) func(client Client, h hooks, more ...func(*Options)) *DynamoStore {
	t.Helper()
	fns := newTable(t, optFns...)
	return func(client Client, h hooks, more ...func(*Options)) *DynamoStore {
		if client == nil {
			client = newClient(t)
		}
		s := newDynamoStore(client, 0, h, append(fns[:len(fns):len(fns)], more...))
		t.Cleanup(s.StopCleanup)
		return s
	}
}

// Kinds of item under a key, as itemKind tells them.
const (
	noItem       = "nothing"
	sessionItem  = "a session"
	revokedItem  = "a revocation"
	unknownShape = "something else"
)

// itemKind says what the table of s holds under key (the KeyPrefix and
// the token as stored), bypassing the store.
func itemKind(t *testing.T, s *DynamoStore, key string) string {
	t.Helper()
	item := rawItem(t, s, key)
	switch {
	case item == nil:
		return noItem
	case sessionitem.Classify(item, s.names) == sessionitem.Session:
		return sessionItem
	case sessionitem.Revoked(item):
		return revokedItem
	}
	return unknownShape
}

// wantKinds fails unless the clear key of token holds clear and its
// hashed key hashed. Its messages never hold the token.
func wantKinds(t *testing.T, s *DynamoStore, token, clear, hashed string) {
	t.Helper()
	if got := itemKind(t, s, s.prefix+token); got != clear {
		t.Errorf("got %s under the clear token: expected %s", got, clear)
	}
	if got := itemKind(t, s, s.prefix+sessionitem.HashToken(token)); got != hashed {
		t.Errorf("got %s under the hashed token: expected %s", got, hashed)
	}
}

// wantStats fails unless s counted moved and notFound.
func wantStats(t *testing.T, s *DynamoStore, moved, notFound uint64) {
	t.Helper()
	if got, want := s.ClearTokenStats(), (ClearTokenStats{Moved: moved, NotFound: notFound}); got != want {
		t.Errorf("got %+v: expected %+v", got, want)
	}
}

// findData returns what s finds for token; its messages never hold the
// token.
func findData(t *testing.T, s scs.Store, token string) (string, bool) {
	t.Helper()
	b, found, err := s.Find(token)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), found
}

// TestHashTokensKeys: under HashTokens every method that takes a token
// keys the table by its hash, exactly the key scs's HashTokenInStore
// gives a store that does not hash; the fallback needs HashTokens.
func TestHashTokensKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, func(o *Options) { o.KeyPrefix = "app:" })
	s := open(nil, hooks{}, hashTokens)
	plain := open(nil, hooks{}) // scs's HashTokenInStore hashes for it
	const token = "tok3n-hash-keys"
	hash := sessionitem.HashToken(token)
	if err := s.Commit(token, []byte("one"), liveAt()); err != nil {
		t.Fatal(err)
	}
	wantKinds(t, s, token, noItem, sessionItem)
	if got, found := findData(t, s, token); !found || got != "one" {
		t.Fatalf("got %q, %v: expected the session", got, found)
	}
	if got, found := findData(t, plain, hash); !found || got != "one" {
		t.Fatalf("got %q, %v: expected the session under the key HashTokenInStore gives", got, found)
	}
	if _, _, found, err := s.FindExpiryCtx(ctx, token); !found || err != nil {
		t.Fatalf("FindExpiryCtx: got %v, %v", found, err)
	}
	if stored, err := s.CommitStoredCtx(ctx, token, []byte("two"), liveAt()); !stored || err != nil {
		t.Fatalf("CommitStoredCtx: got %v, %v", stored, err)
	}
	if stored, err := s.CommitNewCtx(ctx, token, []byte("three"), liveAt()); stored || err != nil {
		t.Fatalf("CommitNewCtx over the live session: got %v, %v: expected nothing stored", stored, err)
	}
	if got, _ := findData(t, plain, hash); got != "two" {
		t.Fatalf("got %q: expected the data CommitStoredCtx wrote", got)
	}
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if keys := slices.Collect(maps.Keys(all)); len(keys) != 1 || keys[0] != hash {
		t.Fatalf("got %d keys from All: expected the one hash", len(keys))
	}
	if err := s.Delete(token); err != nil {
		t.Fatal(err)
	}
	wantKinds(t, s, token, noItem, revokedItem)
	if stored, err := plain.CommitStoredCtx(ctx, hash, []byte("back"), liveAt()); stored || err != nil {
		t.Fatalf("got %v, %v: expected the revocation in force for HashTokenInStore's key", stored, err)
	}
	// Tokens the store cannot use are not found, hashed or not.
	for _, bad := range []string{"", "not a token", strings.Repeat("a", maxKeyBytes)} {
		if _, found := findData(t, s, bad); found {
			t.Fatal("found a session for a token scs never makes")
		}
	}

	if err := CheckOptions(func(o *Options) { o.ClearTokenFallback = true }); !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "HashTokens") {
		t.Fatalf("got %v: expected ErrInvalidOptions naming HashTokens", err)
	}
	if err := CheckOptions(clearFallback); err != nil {
		t.Fatalf("got %v: expected both options accepted", err)
	}
}

// hashApp is an instance of a web application: scs over store, hashing
// the tokens it gives the store when hashInStore is set (HashTokenInStore).
// POST /login logs a user in, GET / says who is logged in ("user=" and
// the ID, empty for nobody), POST /logout logs out.
func hashApp(t *testing.T, store scs.Store, hashInStore bool) *httptest.Server {
	sm := scs.New()
	sm.Store = store
	sm.HashTokenInStore = hashInStore
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), "user_id", r.PostFormValue("user"))
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "user="+sm.GetString(r.Context(), "user_id"))
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return srv
}

// login logs b in as user on app and returns its cookie.
func login(t *testing.T, b *browser, app *httptest.Server, user string) string {
	t.Helper()
	b.do(http.MethodPost, app.URL+"/login", url.Values{"user": {user}})
	if got := b.do(http.MethodGet, app.URL+"/", nil); got != "user="+user {
		t.Fatalf("got %q after logging in: expected user=%s", got, user)
	}
	return b.cookie(app)
}

// wantUser fails unless b, replaying its cookie, is logged in on app as
// user ("" for nobody).
func wantUser(t *testing.T, b *browser, app *httptest.Server, user string) {
	t.Helper()
	if got := b.do(http.MethodGet, app.URL+"/", nil); got != "user="+user {
		t.Fatalf("got %q: expected user=%s", got, user)
	}
}

// TestHashTokensSwitch: over HTTP with scs, users logged in on a store
// keyed by clear tokens stay logged in when the application switches to
// HashTokens with ClearTokenFallback (each session moved on first use,
// under the hashed key only, its owner kept), and again when it switches
// to scs's HashTokenInStore with HashTokens off; a logout under the
// fallback is final for both keys; DeleteOwner logs a moved user out. With
// and without a CachedStore in front, and with sealed data, which a move
// seals again, bound to the new key.
func TestHashTokensSwitch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		cached bool
		sealed bool
	}{{"DynamoStore", false, false}, {"CachedStore", true, false}, {"sealed", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := []func(*Options){func(o *Options) { o.Owner = SessionValue(scs.GobCodec{}, "user_id") }}
			if c.sealed {
				opts = append(opts, withEncryption(newAEAD(t)))
			}
			open := sharedTable(t, opts...)
			front := func(s *DynamoStore) scs.Store {
				if c.cached {
					return NewCached(s)
				}
				return s
			}
			oldStore := open(nil, hooks{})
			oldApp := hashApp(t, front(oldStore), false)
			alice, bob, carol, erin := newBrowser(t), newBrowser(t), newBrowser(t), newBrowser(t)
			tokA := login(t, alice, oldApp, "alice")
			tokB := login(t, bob, oldApp, "bob")
			tokC := login(t, carol, oldApp, "carol")
			tokE := login(t, erin, oldApp, "erin")
			for _, tok := range []string{tokA, tokB, tokC, tokE} {
				wantKinds(t, oldStore, tok, sessionItem, noItem)
			}

			// The deploy with HashTokens and the fallback.
			newStore := open(nil, hooks{}, clearFallback)
			newFront := front(newStore)
			newApp := hashApp(t, newFront, false)
			wantUser(t, alice, newApp, "alice")
			wantKinds(t, newStore, tokA, revokedItem, sessionItem)
			wantStats(t, newStore, 1, 0)
			item := rawItem(t, newStore, sessionitem.HashToken(tokA))
			if owner, ok := item[newStore.ownerAttr].(*types.AttributeValueMemberS); !ok || owner.Value != "alice" {
				t.Errorf("got owner %v: expected the moved session to keep its owner", item[newStore.ownerAttr])
			}
			if c.sealed {
				if _, format, err := sessionitem.Data(item, "data"); err != nil || !format.Sealed {
					t.Errorf("got format %+v, %v: expected the moved session sealed", format, err)
				}
			}
			wantUser(t, alice, newApp, "alice") // served from the hashed key
			wantStats(t, newStore, 1, 0)
			wantUser(t, bob, newApp, "bob")
			wantStats(t, newStore, 2, 0)

			// A logout before the move revokes both keys: not even the old
			// deploy finds the session again.
			carol.do(http.MethodPost, newApp.URL+"/logout", nil)
			wantKinds(t, newStore, tokC, revokedItem, revokedItem)
			if _, found := findData(t, oldStore, tokC); found {
				t.Fatal("the old deploy's store found the session after the logout")
			}
			carol.client.Jar.SetCookies(mustParse(t, newApp.URL), []*http.Cookie{{Name: "session", Value: tokC}})
			wantUser(t, carol, newApp, "")

			// DeleteOwner logs a moved user out.
			wantUser(t, erin, newApp, "erin")
			var deleted int
			var err error
			if cs, ok := newFront.(*CachedStore); ok {
				deleted, err = cs.DeleteOwner(context.Background(), "erin")
			} else {
				deleted, err = newStore.DeleteOwner(context.Background(), "erin")
			}
			if deleted != 1 || err != nil {
				t.Fatalf("DeleteOwner: got %d, %v: expected the moved session deleted", deleted, err)
			}
			wantUser(t, erin, newApp, "")
			wantKinds(t, newStore, tokE, revokedItem, revokedItem)

			// A session that begins on the new deploy is under its hash only.
			dave := newBrowser(t)
			tokD := login(t, dave, newApp, "dave")
			wantKinds(t, newStore, tokD, noItem, sessionItem)

			// The fallback found nothing for a lifetime: the deploy to scs's
			// own HashTokenInStore, HashTokens off, loses nobody.
			lastStore := open(nil, hooks{})
			lastApp := hashApp(t, front(lastStore), true)
			wantUser(t, alice, lastApp, "alice")
			wantUser(t, bob, lastApp, "bob")
			wantUser(t, dave, lastApp, "dave")
			wantUser(t, carol, lastApp, "")
			wantUser(t, erin, lastApp, "")
		})
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// gatedClient is a Client that calls gate, when set, before each GetItem,
// PutItem and DeleteItem, with the request's kind ("get", "put",
// "delete"), its key and, for a PutItem, the item; gate may block to hold
// the request.
type gatedClient struct {
	*dynamodb.Client // Query and BatchGetItem too, for the owner methods
	mu               sync.Mutex
	gate             func(ctx context.Context, kind, key string, item map[string]types.AttributeValue)
}

func (c *gatedClient) before(ctx context.Context, kind string, key map[string]types.AttributeValue, item map[string]types.AttributeValue) {
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		k, _ := key[sessionitem.DefaultKeyAttribute].(*types.AttributeValueMemberS)
		if k != nil {
			gate(ctx, kind, k.Value, item)
		}
	}
}

func (c *gatedClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.before(ctx, "get", in.Key, nil)
	return c.Client.GetItem(ctx, in, optFns...)
}

func (c *gatedClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.before(ctx, "put", in.Item, in.Item)
	return c.Client.PutItem(ctx, in, optFns...)
}

func (c *gatedClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.before(ctx, "delete", in.Key, nil)
	return c.Client.DeleteItem(ctx, in, optFns...)
}

// holdFirst makes c hold the first request that match picks until the
// returned release is called; reached is closed when it is held.
func (c *gatedClient) holdFirst(match func(kind, key string, item map[string]types.AttributeValue) bool) (reached <-chan struct{}, release func()) {
	held, free := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.mu.Lock()
	c.gate = func(ctx context.Context, kind, key string, item map[string]types.AttributeValue) {
		if !match(kind, key, item) {
			return
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return
		}
		close(held)
		select {
		case <-free:
		case <-ctx.Done():
		}
	}
	c.mu.Unlock()
	return held, sync.OnceFunc(func() { close(free) })
}

// Matchers for holdFirst, of the requests of a move of token.
func readOf(key string) func(string, string, map[string]types.AttributeValue) bool {
	return func(kind, k string, _ map[string]types.AttributeValue) bool { return kind == "get" && k == key }
}

func sessionPutOf(key string) func(string, string, map[string]types.AttributeValue) bool {
	return func(kind, k string, item map[string]types.AttributeValue) bool {
		return kind == "put" && k == key && !sessionitem.Revoked(item)
	}
}

func revocationPutOf(key string) func(string, string, map[string]types.AttributeValue) bool {
	return func(kind, k string, item map[string]types.AttributeValue) bool {
		return kind == "put" && k == key && sessionitem.Revoked(item)
	}
}

// TestHashTokensConcurrentMove: two instances with the fallback serve one
// user's first requests after the switch at once, interleaved
// deterministically by holding one instance's request until the other's
// has ended: the session ends up under the hashed key once, no session is
// left under the clear key (its revocation is), each instance served the
// user, and only one counted a move.
func TestHashTokensConcurrentMove(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// hold picks the request of instance 1 (held is 1) or 2 (held is
		// 2) to hold while the other serves its whole request.
		held int
		hold func(clear, hashed string) func(string, string, map[string]types.AttributeValue) bool
	}{
		{"both read the clear key, then one moves", 2, func(_, hashed string) func(string, string, map[string]types.AttributeValue) bool {
			return sessionPutOf(hashed)
		}},
		{"one reads the clear key after the other moved", 2, func(clear, _ string) func(string, string, map[string]types.AttributeValue) bool {
			return readOf(clear)
		}},
		{"one reads the hashed key amid the other's move", 1, func(clear, _ string) func(string, string, map[string]types.AttributeValue) bool {
			return revocationPutOf(clear)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			open := sharedTable(t)
			oldApp := hashApp(t, open(nil, hooks{}), false)
			user := newBrowser(t)
			token := login(t, user, oldApp, "u-7")

			clients := []*gatedClient{{Client: newClient(t)}, {Client: newClient(t)}}
			stores := []*DynamoStore{open(clients[0], hooks{}, clearFallback), open(clients[1], hooks{}, clearFallback)}
			apps := []*httptest.Server{hashApp(t, stores[0], false), hashApp(t, stores[1], false)}
			held, other := c.held-1, 2-c.held
			reached, release := clients[held].holdFirst(c.hold(token, sessionitem.HashToken(token)))
			t.Cleanup(release)

			got := make(chan string, 1)
			go func() {
				res, err := user.client.Get(apps[held].URL + "/")
				if err != nil {
					got <- err.Error()
					return
				}
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				got <- fmt.Sprintf("%d %s %v", res.StatusCode, body, err)
			}()
			waitChan(t, reached, "the held instance's request")
			wantUser(t, user, apps[other], "u-7")
			release()
			if g := waitChan(t, got, "the held instance's answer"); g != "200 user=u-7 <nil>" {
				t.Fatalf("got %q from the held instance: expected the user logged in", g)
			}
			wantKinds(t, stores[0], token, revokedItem, sessionItem)
			for i, app := range apps {
				wantUser(t, user, app, "u-7")
				if st := stores[i].ClearTokenStats(); st.NotFound != 0 {
					t.Errorf("instance %d: got %+v: expected no read that found nothing", i+1, st)
				}
			}
			if moved := stores[0].ClearTokenStats().Moved + stores[1].ClearTokenStats().Moved; moved != 1 {
				t.Errorf("got %d moves counted: expected 1", moved)
			}
		})
	}
}

// TestHashTokensRevokedNotMoved: a move never overwrites a revocation of
// the hashed key, and a logout on an instance still on clear tokens during
// a move wins; a Commit there during a move stays under the clear key,
// never moved over the session it was moved to.
func TestHashTokensRevokedNotMoved(t *testing.T) {
	t.Parallel()
	const token = "tok3n-revoked-move"
	ctx := context.Background()
	hashed := sessionitem.HashToken(token)

	t.Run("revoked before", func(t *testing.T) {
		t.Parallel()
		open := sharedTable(t)
		old := open(nil, hooks{})
		if err := old.Commit(token, []byte("old"), liveAt()); err != nil {
			t.Fatal(err)
		}
		// Deleted under the hashed key alone, as by a store without the
		// fallback.
		if err := open(nil, hooks{}, hashTokens).Delete(token); err != nil {
			t.Fatal(err)
		}
		spy := &spyClient{Client: newClient(t)}
		s := open(spy, hooks{}, clearFallback)
		if _, found := findData(t, s, token); found {
			t.Fatal("found the session: expected the hashed key's revocation final")
		}
		if n := spy.gets.Load(); n != 1 {
			t.Errorf("got %d reads: expected the clear key not read under a revocation", n)
		}
		wantKinds(t, s, token, sessionItem, revokedItem)
		wantStats(t, s, 0, 0)
	})

	t.Run("revoked while moving", func(t *testing.T) {
		t.Parallel()
		open := sharedTable(t)
		if err := open(nil, hooks{}).Commit(token, []byte("old"), liveAt()); err != nil {
			t.Fatal(err)
		}
		client := &gatedClient{Client: newClient(t)}
		s := open(client, hooks{}, clearFallback)
		reached, release := client.holdFirst(sessionPutOf(hashed))
		t.Cleanup(release)
		found := make(chan bool, 1)
		go func() {
			_, ok, err := s.FindCtx(ctx, token)
			found <- ok || err != nil
		}()
		waitChan(t, reached, "the move's write")
		if err := open(nil, hooks{}, clearFallback).Delete(token); err != nil {
			t.Fatal(err)
		}
		release()
		if waitChan(t, found, "the Find") {
			t.Fatal("the Find found the session (or failed): expected the logout to win")
		}
		wantKinds(t, s, token, revokedItem, revokedItem)
	})

	t.Run("logged out on the old deploy while moving", func(t *testing.T) {
		t.Parallel()
		open := sharedTable(t)
		old := open(nil, hooks{})
		if err := old.Commit(token, []byte("old"), liveAt()); err != nil {
			t.Fatal(err)
		}
		client := &gatedClient{Client: newClient(t)}
		s := open(client, hooks{}, clearFallback)
		reached, release := client.holdFirst(revocationPutOf(token))
		t.Cleanup(release)
		found := make(chan bool, 1)
		go func() {
			_, ok, err := s.FindCtx(ctx, token)
			found <- ok || err != nil
		}()
		waitChan(t, reached, "the clear key's revocation")
		wantKinds(t, s, token, sessionItem, sessionItem) // moved, not yet revoked
		if err := old.Delete(token); err != nil {
			t.Fatal(err)
		}
		release()
		if waitChan(t, found, "the Find") {
			t.Fatal("the Find found the session (or failed): expected the logout to win")
		}
		wantKinds(t, s, token, revokedItem, revokedItem)
		if _, found := findData(t, open(nil, hooks{}), hashed); found {
			t.Fatal("found the session under HashTokenInStore's key")
		}
	})

	t.Run("committed on the old deploy while moving", func(t *testing.T) {
		t.Parallel()
		open := sharedTable(t)
		old := open(nil, hooks{})
		if err := old.Commit(token, []byte("old"), liveAt()); err != nil {
			t.Fatal(err)
		}
		client := &gatedClient{Client: newClient(t)}
		s := open(client, hooks{}, clearFallback)
		reached, release := client.holdFirst(revocationPutOf(token))
		t.Cleanup(release)
		data := make(chan string, 1)
		go func() {
			b, _, err := s.FindCtx(ctx, token)
			data <- fmt.Sprint(string(b), err)
		}()
		waitChan(t, reached, "the clear key's revocation")
		if err := old.Commit(token, []byte("newer"), liveAt()); err != nil {
			t.Fatal(err)
		}
		release()
		if got := waitChan(t, data, "the Find"); got != "old<nil>" {
			t.Fatalf("got %q: expected the session moved", got)
		}
		wantKinds(t, s, token, sessionItem, sessionItem)
		if got, _ := findData(t, s, token); got != "old" {
			t.Fatalf("got %q: expected the hashed key's session, not the clear one moved over it", got)
		}
		wantStats(t, s, 1, 0)
	})
}

// TestHashTokensDelete: under the fallback, Delete revokes the clear key
// as well as the hashed one, moved or not, so no instance on either deploy
// finds the session again, nor commits it back.
func TestHashTokensDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t)
	old := open(nil, hooks{})
	s := open(nil, hooks{}, clearFallback)
	for _, token := range []string{"tok3n-not-moved", "tok3n-moved"} {
		if err := old.Commit(token, []byte("data"), liveAt()); err != nil {
			t.Fatal(err)
		}
	}
	if _, found := findData(t, s, "tok3n-moved"); !found {
		t.Fatal("expected the session moved and found")
	}
	for _, token := range []string{"tok3n-not-moved", "tok3n-moved"} {
		if err := s.Delete(token); err != nil {
			t.Fatal(err)
		}
		wantKinds(t, s, token, revokedItem, revokedItem)
		if _, found := findData(t, s, token); found {
			t.Fatal("found a deleted session")
		}
		if _, found := findData(t, old, token); found {
			t.Fatal("the old deploy found a deleted session")
		}
		if stored, err := old.CommitStoredCtx(ctx, token, []byte("back"), liveAt()); stored || err != nil {
			t.Fatalf("got %v, %v: expected the old deploy's Commit to store nothing", stored, err)
		}
	}
}

// TestHashTokensExpiredNotMoved: an expired clear session, or a
// revocation, is never moved, and each counts as a read that found
// nothing; a live clear session is moved over an expired hashed one.
func TestHashTokensExpiredNotMoved(t *testing.T) {
	t.Parallel()
	open := sharedTable(t)
	old := open(nil, clockAhead)
	s := open(nil, clockAhead, clearFallback)
	if err := old.Commit("tok3n-expired", []byte("old"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if err := old.Delete("tok3n-revoked"); err != nil {
		t.Fatal(err)
	}
	for i, token := range []string{"tok3n-expired", "tok3n-revoked"} {
		if _, found := findData(t, s, token); found {
			t.Fatal("found a session that was no live one under its clear token")
		}
		wantStats(t, s, 0, uint64(i+1))
	}
	wantKinds(t, s, "tok3n-expired", sessionItem, noItem) // left to TTL and the sweeper
	wantKinds(t, s, "tok3n-revoked", revokedItem, noItem)

	if err := open(nil, clockAhead, hashTokens).Commit("tok3n-again", []byte("ended"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if err := old.Commit("tok3n-again", []byte("live"), liveAt()); err != nil {
		t.Fatal(err)
	}
	if got, found := findData(t, s, "tok3n-again"); got != "live" || !found {
		t.Fatalf("got %q, %v: expected the live clear session moved over the expired hashed one", got, found)
	}
	wantKinds(t, s, "tok3n-again", revokedItem, sessionItem)
	wantStats(t, s, 1, 2)
}

// TestHashTokensCost counts the requests each call makes, with and without
// the fallback, and checks the fallback's metric: one extra read per miss,
// none per hit; a move costs two reads and two writes; Delete two writes.
func TestHashTokensCost(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	open := sharedTable(t, func(o *Options) { o.MeterProvider = mp })
	old := open(nil, hooks{})
	spyHashed, spyFallback := &spyClient{Client: newClient(t)}, &spyClient{Client: newClient(t)}
	hashedOnly := open(spyHashed, hooks{}, hashTokens)
	s := open(spyFallback, hooks{}, clearFallback)
	if err := old.Commit("tok3n-cost", []byte("data"), liveAt()); err != nil {
		t.Fatal(err)
	}

	// A strongly consistent read of an item of at most 4 KB, or of none,
	// is one read unit, and a write of at most 1 KB one write unit.
	type cost = requestCost
	measure := func(spy *spyClient, call func()) cost {
		t.Helper()
		return measureCost(t, reader, spy, call)
	}
	find := func(st *DynamoStore, token string, want bool) func() {
		return func() {
			if _, found := findData(t, st, token); found != want {
				t.Fatalf("got found %v: expected %v", found, want)
			}
		}
	}
	del := func(st *DynamoStore, token string) func() {
		return func() {
			if err := st.Delete(token); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		what string
		spy  *spyClient
		call func()
		want cost
	}{
		{"a miss without the fallback", spyHashed, find(hashedOnly, "tok3n-none", false), cost{1, 0, 0, 1, 0}},
		{"a miss with the fallback", spyFallback, find(s, "tok3n-none", false), cost{2, 0, 0, 2, 0}},
		{"a move", spyFallback, find(s, "tok3n-cost", true), cost{2, 2, 0, 2, 2}},
		{"a hit without the fallback", spyHashed, find(hashedOnly, "tok3n-cost", true), cost{1, 0, 0, 1, 0}},
		{"a hit with the fallback", spyFallback, find(s, "tok3n-cost", true), cost{1, 0, 0, 1, 0}},
		{"a Delete without the fallback", spyHashed, del(hashedOnly, "tok3n-gone"), cost{0, 1, 0, 0, 1}},
		{"a Delete with the fallback", spyFallback, del(s, "tok3n-gone2"), cost{0, 2, 0, 0, 2}},
		{"a miss of a deleted session with the fallback", spyFallback, find(s, "tok3n-gone2", false), cost{1, 0, 0, 1, 0}},
	} {
		if got := measure(c.spy, c.call); got != c.want {
			t.Errorf("%s: got %+v requests: expected %+v", c.what, got, c.want)
		}
	}
	wantStats(t, s, 1, 1)
	got := collect(t, reader)
	table := s.tableName
	for result, want := range map[string]float64{"moved": 1, "not_found": 1} {
		if n := got["dynamostore.clear_token_fallback{result="+result+",table="+table+"}"]; n != want {
			t.Errorf("got %v for %s: expected %v", n, result, want)
		}
	}
}

// TestHashTokensCachedDeleteOwner: a CachedStore in front of a store with
// HashTokens keys its cache by the hash, so that DeleteOwner, which names
// the sessions by their keys as stored, drops the copies a shared cache
// holds; and the keys are those of a CachedStore in front of a store on
// scs's HashTokenInStore, so that both deploys share one cache.
func TestHashTokensCachedDeleteOwner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	open := sharedTable(t, func(o *Options) { o.Owner = func(b []byte) (string, bool) { return "owner-1", true } })
	layer := newMemCache(defaultMaxBytes, defaultMaxEntries)
	shared := func(o *CacheOptions) { o.Cache = layer }
	c1 := NewCached(open(nil, hooks{}, hashTokens), shared)
	c2 := NewCached(open(nil, hooks{}, hashTokens), shared)
	onHashTokenInStore := NewCached(open(nil, hooks{}), shared)
	const token = "tok3n-cached-owner"
	if err := c1.Commit(token, []byte("data"), liveAt()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, found := findData(t, c2, token); !found || got != "data" {
			t.Fatalf("got %q, %v: expected the session", got, found)
		}
	}
	if got, found := findData(t, onHashTokenInStore, sessionitem.HashToken(token)); !found || got != "data" {
		t.Fatalf("got %q, %v: expected the session", got, found)
	}
	if hits := c2.Stats().Hits + onHashTokenInStore.Stats().Hits; hits != 3 {
		t.Fatalf("got %d hits: expected every Find served by the shared copy c1's Commit left", hits)
	}
	if n, err := c1.DeleteOwner(ctx, "owner-1"); n != 1 || err != nil {
		t.Fatalf("DeleteOwner: got %d, %v", n, err)
	}
	if _, found := findData(t, c2, token); found {
		t.Fatal("found the deleted session: expected DeleteOwner to drop the shared copy")
	}
	if _, found := findData(t, onHashTokenInStore, sessionitem.HashToken(token)); found {
		t.Fatal("found the deleted session through HashTokenInStore's key")
	}
}

// TestHashTokensStoredKeyIsNoCookie: whoever reads the table sees each
// session's key, hash(T); sent as a cookie to a store with
// ClearTokenFallback, it names no session (the fallback never reads an
// item written under a hash as a clear token), and the session's user
// stays logged in. Import refuses a store on its own table, whose All
// would list those keys as tokens. (From the second attack review of #26.)
func TestHashTokensStoredKeyIsNoCookie(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{false, true} {
		t.Run(fmt.Sprintf("sealed=%v", sealed), func(t *testing.T) {
			t.Parallel()
			var optFns []func(*Options)
			if sealed {
				optFns = append(optFns, withEncryption(newAEAD(t)))
			}
			open := sharedTable(t, optFns...)
			hashed := open(nil, hooks{}, clearFallback)
			ctx := context.Background()
			token := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) // 43 characters, as a hash
			if err := hashed.CommitCtx(ctx, token, []byte("data"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if b, found, err := hashed.FindCtx(ctx, sessionitem.HashToken(token)); found || err != nil {
				t.Fatalf("got %q, %v, %v: expected the stored key to be no cookie", b, found, err)
			}
			mustFind(t, hashed, token, "data")
			if st := hashed.ClearTokenStats(); st.Moved != 0 {
				t.Fatalf("got %+v: expected nothing moved", st)
			}
			clear := open(nil, hooks{})
			if n, err := hashed.Import(ctx, clear, scs.GobCodec{}); n != 0 || err == nil || !strings.Contains(err.Error(), "same table") {
				t.Fatalf("got %d, %v: expected Import to refuse its own table", n, err)
			}
		})
	}
}

// TestHashTokensOwnerMethodsDuringMove: under ClearTokenFallback the owner
// methods list a session not moved yet by its clear key; a request of the
// user moves it under its hash (and revokes the clear key) before their
// revocation of the clear key lands, which then fails its condition. The
// hashed copy is revoked in its place, and counted; but never the session
// DeleteOwnerExcept keeps, though the index listed it under its clear key
// too. (From the third attack review.)
func TestHashTokensOwnerMethodsDuringMove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func(s *DynamoStore, id, keepID string) (int, error)
	}{
		{"DeleteOwner", func(s *DynamoStore, _, _ string) (int, error) { return s.DeleteOwner(ctx, "alice") }},
		{"DeleteOwnerSession", func(s *DynamoStore, id, _ string) (int, error) {
			ok, err := s.DeleteOwnerSession(ctx, "alice", id)
			return map[bool]int{true: 1}[ok], err
		}},
		{"DeleteOwnerExcept", func(s *DynamoStore, _, keepID string) (int, error) { return s.DeleteOwnerExcept(ctx, "alice", keepID) }},
		{"LimitOwner", func(s *DynamoStore, _, _ string) (int, error) { return s.LimitOwner(ctx, "alice", 0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			open := sharedTable(t, sessionOwner)
			old := open(nil, hooks{})
			tok, kept := a3Token(t), a3Token(t)
			a3Commit(t, old, tok, "1") // before the switch
			spy := newA3Client(t)
			admin, web := open(spy, hooks{}, clearFallback), open(nil, hooks{}, clearFallback)
			if c.name == "DeleteOwnerExcept" {
				a3Commit(t, old, kept, "k")
				waitOwnerTokensN(t, admin, "alice", 2)
			} else {
				waitOwnerTokens(t, admin, "alice", []string{tok})
			}
			// The IDs as OwnerSessions lists them and CurrentSessionID
			// names them: by the hashed key, moved or not.
			id := sessionitem.SessionID(admin.prefix + sessionitem.HashToken(tok))
			keepID := sessionitem.SessionID(admin.prefix + sessionitem.HashToken(kept))
			// The listed session is held at the revocation of its clear
			// key, and moved meanwhile; so is the kept one, whose clear key
			// DeleteOwnerExcept must not revoke either.
			moving := []string{tok}
			if c.name == "DeleteOwnerExcept" {
				moving = append(moving, kept)
			}
			reached, release := spy.holdFirst(revocationPutOf(tok))
			t.Cleanup(release)
			type result struct {
				n   int
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := c.call(admin, id, keepID)
				done <- result{n, err}
			}()
			waitChan(t, reached, "the revocation of the clear key")
			for _, m := range moving {
				a3Want(t, "a request amid the revocation, which moves the session", web, m, map[bool]string{true: "1", false: "k"}[m == tok])
			}
			release()
			r := waitChan(t, done, c.name)
			if r.err != nil || r.n != 1 {
				t.Fatalf("got %d revoked, %v: expected the moved session revoked and counted", r.n, r.err)
			}
			a3Want(t, "the moved session after "+c.name, web, tok, "")
			if itemKind(t, web, sessionitem.HashToken(tok)) != revokedItem {
				t.Fatalf("got %s under the hashed key: expected a revocation", itemKind(t, web, sessionitem.HashToken(tok)))
			}
			if c.name == "DeleteOwnerExcept" {
				a3Want(t, "the kept session", web, kept, "k")
			}
		})
	}
}

// requestCost is what a call cost: the requests a spyClient saw, and the
// capacity units DynamoDB reported for them (the dynamostore.capacity
// metric of the store's MeterProvider, read by reader).
type requestCost struct {
	gets, puts, deletes   int64
	readUnits, writeUnits float64
}

// measureCost calls call and returns what it cost.
func measureCost(t *testing.T, reader *sdkmetric.ManualReader, spy *spyClient, call func()) requestCost {
	t.Helper()
	units := func() (read, write float64) {
		for k, v := range collect(t, reader) {
			switch {
			case strings.HasPrefix(k, "dynamostore.capacity{kind=read,"):
				read += v
			case strings.HasPrefix(k, "dynamostore.capacity{kind=write,"):
				write += v
			}
		}
		return read, write
	}
	g, p, d := spy.gets.Load(), spy.puts.Load(), spy.deletes.Load()
	r, w := units()
	call()
	r2, w2 := units()
	return requestCost{spy.gets.Load() - g, spy.puts.Load() - p, spy.deletes.Load() - d, r2 - r, w2 - w}
}
