package dynamostore

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// migrateApp serves an scs application on store: /login?user=U&v=V logs
// in as U with V, /incr adds one to the count and writes it, /get writes
// the user and the value and the count ("anonymous" when no one is logged
// in).
func migrateApp(t *testing.T, store scs.Store, hashed bool) *httptest.Server {
	t.Helper()
	sm := scs.New()
	sm.Store = store
	sm.HashTokenInStore = hashed
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "user_id", r.FormValue("user"))
		sm.Put(r.Context(), "v", r.FormValue("v"))
	})
	mux.HandleFunc("GET /put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "v", r.FormValue("v"))
	})
	mux.HandleFunc("GET /incr", func(w http.ResponseWriter, r *http.Request) {
		n := sm.GetInt(r.Context(), "n") + 1
		sm.Put(r.Context(), "n", n)
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		user := sm.GetString(r.Context(), "user_id")
		if user == "" {
			fmt.Fprint(w, "anonymous")
			return
		}
		fmt.Fprintf(w, "%s %s %d", user, sm.GetString(r.Context(), "v"), sm.GetInt(r.Context(), "n"))
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return srv
}

// browse sends GET path to srv with the browser's cookies and returns the
// body. Servers on 127.0.0.1 share the browser's cookies, whatever their
// ports, as two deploys behind one domain do.
func browse(t *testing.T, browser *http.Client, srv *httptest.Server, path string) string {
	t.Helper()
	resp, err := browser.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d, %q, %v", path, resp.StatusCode, body, err)
	}
	return string(body)
}

func newBrowserClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 2 * time.Minute} // only a hang reaches it
}

// sessionOwner is the Owner of migrateApp's sessions, by scs's GobCodec.
func sessionOwner(o *Options) { o.Owner = SessionValue(scs.GobCodec{}, "user_id") }

// TestMigrateFromMemstore: over HTTP, with and without HashTokenInStore,
// sessions that scs's memstore held before the switch stay logged in
// after it (the cookie replayed), are moved on first use with their
// deadline, are logged out everywhere with DeleteOwner after the move and
// stay out though memstore still holds them, and one past its deadline is
// never served.
func TestMigrateFromMemstore(t *testing.T) {
	t.Parallel()
	for _, hashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("hashed=%v", hashed), func(t *testing.T) {
			t.Parallel()
			from := memstore.NewWithCleanupInterval(0)
			to := newStore(t, nil, sessionOwner)
			before := migrateApp(t, from, hashed)
			ann, bo := newBrowserClient(t), newBrowserClient(t)
			browse(t, ann, before, "/login?user=ann&v=a1")
			browse(t, bo, before, "/login?user=bo&v=b1")

			// One past its deadline, which memstore still holds.
			codec := scs.GobCodec{}
			stale, err := codec.Encode(time.Now().Add(-time.Minute), map[string]any{"user_id": "cy"})
			if err != nil {
				t.Fatal(err)
			}
			staleToken := "c2Vzc2lvbi1wYXN0LWl0cy1kZWFkbGluZS0wMDAwMDAwMDA"
			stored := staleToken
			if hashed {
				stored = sessionitem.HashToken(staleToken)
			}
			if err := from.Commit(stored, stale, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			cy := newBrowserClient(t)
			u, _ := url.Parse(before.URL)
			cy.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: staleToken}})

			m := NewMigrating(from, to, codec)
			after := migrateApp(t, m, hashed)
			if got := browse(t, ann, after, "/get"); got != "ann a1 0" {
				t.Fatalf("got %q: expected ann still logged in after the switch", got)
			}
			if st := m.Stats(); st.Moved != 1 || st.To != 0 {
				t.Fatalf("got %+v: expected one session moved", st)
			}
			// Moved with its deadline, to the millisecond.
			all, err := to.AllCtx(context.Background())
			if err != nil || len(all) != 1 {
				t.Fatalf("got %d sessions, %v: expected ann's moved", len(all), err)
			}
			for token, data := range all {
				_, expiry, found, err := to.FindExpiryCtx(context.Background(), token)
				want, _, _ := codec.Decode(data)
				if !found || err != nil || !expiry.Equal(want.Truncate(time.Millisecond)) {
					t.Fatalf("got %v, %v, %v: expected the session moved with its deadline %v", expiry, found, err, want)
				}
			}
			if got := browse(t, ann, after, "/get"); got != "ann a1 0" || m.Stats().To != 1 {
				t.Fatalf("got %q, %+v: expected ann served by the new store", got, m.Stats())
			}
			browse(t, ann, after, "/put?v=a2")
			if got := browse(t, ann, after, "/get"); got != "ann a2 0" {
				t.Fatalf("got %q: expected the new write", got)
			}
			if got := browse(t, cy, after, "/get"); got != "anonymous" {
				t.Fatalf("got %q: expected a session past its deadline never served", got)
			}

			// Log bo out everywhere once moved: out for good, though
			// memstore still holds bo's session.
			if got := browse(t, bo, after, "/get"); got != "bo b1 0" {
				t.Fatalf("got %q: expected bo moved", got)
			}
			waitOwnerTokensN(t, to, "bo", 1)
			if n, err := to.DeleteOwner(context.Background(), "bo"); n != 1 || err != nil {
				t.Fatalf("got %d, %v: expected bo's session revoked", n, err)
			}
			if n := len(mustAll(t, from)); n != 3 {
				t.Fatalf("memstore holds %d sessions: expected all three still", n)
			}
			for range 2 {
				if got := browse(t, bo, after, "/get"); got != "anonymous" {
					t.Fatalf("got %q: expected bo logged out, the old store's copy never moved back", got)
				}
			}
		})
	}
}

// waitOwnerTokensN polls OwnerTokens until it lists n tokens.
func waitOwnerTokensN(t *testing.T, s *DynamoStore, owner string, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("the owner index to list %d sessions", n), func() bool {
		tokens, err := s.OwnerTokens(context.Background(), owner)
		return err == nil && len(tokens) == n
	})
}

func mustAll(t *testing.T, s scs.IterableStore) map[string][]byte {
	t.Helper()
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestMigrateRollingDeploy: at each boundary between deploys, an instance
// of the deploy before and one of the deploy after serve one browser side
// by side, a request to either at random; every request sees the count
// the one before it wrote, and the browser's login from before the deploy
// stays served. Skipping the first two phases is shown to serve an older
// copy.
func TestMigrateRollingDeploy(t *testing.T) {
	t.Parallel()
	type instance func(from, to scs.Store) scs.Store
	phase := func(p MigratePhase) instance {
		return func(from, to scs.Store) scs.Store {
			return NewMigrating(from, to, scs.GobCodec{}, func(o *MigrateOptions) { o.Phase = p })
		}
	}
	beforeMove := func(from, _ scs.Store) scs.Store { return from }
	moves := map[string]func(t *testing.T) (from, to scs.Store){
		"memstore": func(t *testing.T) (scs.Store, scs.Store) { return memstore.NewWithCleanupInterval(0), newStore(t, nil) },
	}
	for move, stores := range moves {
		for _, b := range []struct {
			name        string
			old, new    instance
			olderCopies bool
		}{
			{"before/MigrateReadFrom", beforeMove, phase(MigrateReadFrom), false},
			{"MigrateReadFrom/MigrateWriteBoth", phase(MigrateReadFrom), phase(MigrateWriteBoth), false},
			{"MigrateWriteBoth/MigrateReadTo", phase(MigrateWriteBoth), phase(MigrateReadTo), false},
			{"MigrateReadTo/MigrateToOnly", phase(MigrateReadTo), phase(MigrateToOnly), false},
			{"before/MigrateReadTo", beforeMove, phase(MigrateReadTo), true},
		} {
			t.Run(move+"/"+b.name, func(t *testing.T) {
				t.Parallel()
				from, to := stores(t)
				old := migrateApp(t, b.old(from, to), false)
				new := migrateApp(t, b.new(from, to), false)
				browser := newBrowserClient(t)
				browse(t, browser, old, "/login?user=ann&v=x") // before the deploy
				if b.olderCopies {
					// The new writes both stores, the old then from only: the
					// new reads its own older copy.
					browse(t, browser, new, "/incr")
					browse(t, browser, old, "/incr")
					if got := browse(t, browser, new, "/get"); got != "ann x 1" {
						t.Fatalf("got %q: expected the older copy served, the hazard the first two phases are for", got)
					}
					return
				}
				rng := rand.New(rand.NewPCG(1, uint64(len(b.name))))
				servers := [2]*httptest.Server{old, new}
				for i := 1; i <= 60; i++ {
					srv := servers[rng.IntN(2)]
					if got := browse(t, browser, srv, "/incr"); got != strconv.Itoa(i) {
						t.Fatalf("request %d to the %s deploy: got %q: expected %d, the count the request before wrote", i, map[bool]string{true: "old", false: "new"}[srv == old], got, i)
					}
					if got := browse(t, browser, servers[rng.IntN(2)], "/get"); got != fmt.Sprintf("ann x %d", i) {
						t.Fatalf("after request %d: got %q: expected ann x %d", i, got, i)
					}
				}
			})
		}
	}
}

// heldStore is a store whose CommitNewCtx, once armed, waits until
// released: a move held between its read of the old store and its write.
type heldStore struct {
	*DynamoStore
	armed   atomic.Bool   // it holds the next move once armed
	held    chan struct{} // closed when it holds one
	release chan struct{}
}

func (h *heldStore) CommitNewCtx(ctx context.Context, token string, b []byte, expiry time.Time) (bool, error) {
	if h.armed.CompareAndSwap(true, false) {
		close(h.held)
		<-h.release
	}
	return h.DynamoStore.CommitNewCtx(ctx, token, b, expiry)
}

// TestMigrateMoveOverlapsCommit: a MigrateReadTo instance moves a session
// while a MigrateWriteBoth instance commits newer data (to the new store,
// then the old) between the move's read of the old store and its write:
// the move stores nothing over it, and the Find serves the newer data.
func TestMigrateMoveOverlapsCommit(t *testing.T) {
	t.Parallel()
	from := memstore.NewWithCleanupInterval(0)
	h := &heldStore{DynamoStore: newStore(t, nil), held: make(chan struct{}), release: make(chan struct{})}
	writeBoth := NewMigrating(from, h, scs.GobCodec{}, func(o *MigrateOptions) { o.Phase = MigrateWriteBoth })
	readTo := NewMigrating(from, h, scs.GobCodec{}, func(o *MigrateOptions) { o.Phase = MigrateReadTo })
	codec := scs.GobCodec{}
	deadline := time.Now().Add(time.Hour)
	v1, _ := codec.Encode(deadline, map[string]any{"v": 1})
	v2, _ := codec.Encode(deadline, map[string]any{"v": 2})
	if err := from.Commit("token", v1, deadline); err != nil { // before the move
		t.Fatal(err)
	}
	h.armed.Store(true)
	found := make(chan []byte, 1)
	go func() {
		b, _, err := readTo.Find("token")
		if err != nil {
			t.Error(err)
		}
		found <- b
	}()
	waitChan(t, h.held, "the move's write")
	if err := writeBoth.Commit("token", v2, deadline); err != nil {
		t.Fatal(err)
	}
	close(h.release)
	if b := waitChan(t, found, "the Find"); string(b) != string(v2) {
		t.Fatalf("got %q: expected the newer data", b)
	}
	for _, s := range []scs.Store{h.DynamoStore, from, writeBoth, readTo} {
		if b, _, err := s.Find("token"); err != nil || string(b) != string(v2) {
			t.Fatalf("%T: got %q, %v: expected the newer data", s, b, err)
		}
	}
	if st := readTo.Stats(); st.To != 2 || st.Moved != 0 {
		t.Fatalf("got %+v: expected both Finds answered by the new store, no move", st)
	}
}

// TestMigrateRevokedInTheNewStore: the phases that read the old store ask
// the new one whether the token is revoked: a session deleted through a
// MigrateWriteBoth instance, then committed again to the old store by a
// request in flight on a MigrateReadFrom instance, is served by neither;
// nor is one logged out everywhere through the new store while the old
// holds its copy.
func TestMigrateRevokedInTheNewStore(t *testing.T) {
	t.Parallel()
	codec := scs.GobCodec{}
	from := memstore.NewWithCleanupInterval(0)
	to := newStore(t, nil, func(o *Options) { o.Owner = SessionValue(codec, "user_id") })
	readFrom := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.Phase = MigrateReadFrom })
	writeBoth := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.Phase = MigrateWriteBoth })
	deadline := time.Now().Add(time.Hour)
	v, _ := codec.Encode(deadline, map[string]any{"user_id": "ann"})
	if err := readFrom.Commit("in-flight", v, deadline); err != nil {
		t.Fatal(err)
	}
	if err := writeBoth.Delete("in-flight"); err != nil {
		t.Fatal(err)
	}
	if err := readFrom.Commit("in-flight", v, deadline); err != nil { // a request in flight
		t.Fatal(err)
	}
	if err := writeBoth.Commit("everywhere", v, deadline); err != nil {
		t.Fatal(err)
	}
	waitOwnerTokensN(t, to, "ann", 1)
	if n, err := to.DeleteOwner(context.Background(), "ann"); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected ann's session revoked", n, err)
	}
	// The Commit in flight learned of the revocation, and removed the old
	// store's copy, so that instances before the move do not serve it;
	// DeleteOwner reaches the new store alone.
	if _, ok, _ := from.Find("in-flight"); ok {
		t.Fatal("in-flight: expected the old store's copy removed")
	}
	if _, ok, _ := from.Find("everywhere"); !ok {
		t.Fatal("everywhere: expected the old store to hold a copy")
	}
	for _, token := range []string{"in-flight", "everywhere"} {
		for _, s := range []*MigratingStore{readFrom, writeBoth} {
			if b, ok, err := s.Find(token); ok || err != nil {
				t.Fatalf("%s: got %q, %v, %v: expected the revoked session not served", token, b, ok, err)
			}
		}
	}
}

// TestMigrateIdleTimeout: with MigrateOptions.IdleTimeout, a session moved
// in expires at the earlier of its deadline and IdleTimeout after the
// move, as scs with that IdleTimeout would have stored it.
func TestMigrateIdleTimeout(t *testing.T) {
	t.Parallel()
	codec := scs.GobCodec{}
	from := memstore.NewWithCleanupInterval(0)
	to := newStore(t, nil)
	m := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.IdleTimeout = 20 * time.Minute })
	deadline := time.Now().Add(24 * time.Hour)
	v, _ := codec.Encode(deadline, map[string]any{"v": 1})
	from.Commit("token", v, time.Now().Add(20*time.Minute))
	before := time.Now()
	if _, ok, err := m.Find("token"); !ok || err != nil {
		t.Fatalf("got %v, %v: expected the session moved", ok, err)
	}
	_, expiry, ok, err := to.FindExpiryCtx(context.Background(), "token")
	if !ok || err != nil || expiry.Before(before.Add(20*time.Minute).Truncate(time.Millisecond)) || expiry.After(time.Now().Add(20*time.Minute)) {
		t.Fatalf("got %v, %v, %v: expected an expiry 20 minutes after the move, not the deadline %v", expiry, ok, err, deadline)
	}
}

// noAll is a store that cannot be iterated.
type noAll struct{ scs.Store }

// TestMigrateAll: the union of both stores, the one Find reads first
// winning, sessions past their deadline left out; an error when a store
// cannot be iterated. Behind NewCached, a moved session is cached.
func TestMigrateAll(t *testing.T) {
	t.Parallel()
	codec := scs.GobCodec{}
	from := memstore.NewWithCleanupInterval(0)
	to := newStore(t, nil)
	deadline := time.Now().Add(time.Hour)
	enc := func(v string, deadline time.Time) []byte {
		b, err := codec.Encode(deadline, map[string]any{"v": v})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	from.Commit("both", enc("old", deadline), deadline)
	from.Commit("from", enc("from", deadline), deadline)
	from.Commit("past", enc("past", time.Now().Add(-time.Minute)), deadline)
	to.Commit("both", enc("new", deadline), deadline)
	to.Commit("to", enc("to", deadline), deadline)
	for _, c := range []struct {
		phase    MigratePhase
		bothWins string
	}{{MigrateToOnly, "new"}, {MigrateReadTo, "new"}, {MigrateWriteBoth, "old"}, {MigrateReadFrom, "old"}} {
		m := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.Phase = c.phase })
		all, err := m.AllCtx(context.Background())
		if err != nil || len(all) != 3 || string(all["both"]) != string(enc(c.bothWins, deadline)) {
			t.Fatalf("%v: got %d sessions, %v: expected both, from and to, with %q for both", c.phase, len(all), err, c.bothWins)
		}
	}
	if _, err := NewMigrating(noAll{from}, to, codec).All(); err == nil {
		t.Fatal("expected an error for a store that cannot be iterated")
	}

	c := NewCached(NewMigrating(from, to, codec))
	mustFind(t, c, "from", string(enc("from", deadline)))
	mustFind(t, c, "from", string(enc("from", deadline)))
	if st := c.Stats(); st.Hits != 1 {
		t.Fatalf("got %+v: expected the moved session cached", st)
	}
	if err := c.Delete("from"); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "from", "")
	if _, ok, _ := from.Find("from"); ok {
		t.Fatal("expected Delete to remove the old store's copy")
	}
}

// TestMigrateCachedDeleteOwnerHashed: a CachedStore in front of a
// MigratingStore whose new store hashes tokens (Options.HashTokens) drops
// the cached copies of the sessions DeleteOwner revokes, which the new
// store names by their hashes.
func TestMigrateCachedDeleteOwnerHashed(t *testing.T) {
	t.Parallel()
	codec := scs.GobCodec{}
	to := newStore(t, nil, func(o *Options) { o.HashTokens = true; o.Owner = SessionValue(codec, "user_id") })
	c := NewCached(NewMigrating(memstore.NewWithCleanupInterval(0), to, codec))
	deadline := time.Now().Add(time.Hour)
	v, _ := codec.Encode(deadline, map[string]any{"user_id": "ann"})
	if err := c.Commit("token", v, deadline); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "token", string(v))
	waitOwnerTokensN(t, to, "ann", 1)
	if n, err := c.DeleteOwner(context.Background(), "ann"); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected ann's session revoked", n, err)
	}
	mustFind(t, c, "token", "")
}

// TestMigrateMetrics: the counter dynamostore.migrate.finds counts Finds
// by result as Stats does.
func TestMigrateMetrics(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	codec := scs.GobCodec{}
	from := memstore.NewWithCleanupInterval(0)
	m := NewMigrating(from, newStore(t, nil), codec, func(o *MigrateOptions) {
		o.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	})
	deadline := time.Now().Add(time.Hour)
	v, _ := codec.Encode(deadline, map[string]any{"v": 1})
	from.Commit("token", v, deadline)
	for _, token := range []string{"token", "token", "none"} {
		if _, _, err := m.Find(token); err != nil {
			t.Fatal(err)
		}
	}
	got := collect(t, reader)
	for result, want := range map[string]float64{"moved": 1, "to": 1, "miss": 1} {
		if n := got["dynamostore.migrate.finds{result="+result+"}"]; n != want {
			t.Errorf("result=%s: got %v: expected %v (all: %v)", result, n, want, got)
		}
	}
	if st := m.Stats(); st != (MigrateStats{To: 1, Moved: 1, Misses: 1}) {
		t.Errorf("got %+v: expected the counter's counts", st)
	}
}

// TestMigrateAllRevokedAndStoredFalse: All leaves out a session the new
// store revoked while the old still holds it, in every phase; a Commit
// through MigrateReadFrom of a token revoked in the new store reports
// that the new store did not store it, so that a CachedStore in front
// keeps no copy; NewMigrating refuses nil. (From the second attack
// review.)
func TestMigrateAllRevokedAndStoredFalse(t *testing.T) {
	t.Parallel()
	codec := scs.GobCodec{}
	from := memstore.NewWithCleanupInterval(0)
	to := newStore(t, nil)
	deadline := time.Now().Add(time.Hour)
	v, _ := codec.Encode(deadline, map[string]any{"v": 1})
	from.Commit("revoked", v, deadline)
	from.Commit("live", v, deadline)
	if err := to.Delete("revoked"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []MigratePhase{MigrateReadFrom, MigrateWriteBoth, MigrateReadTo, MigrateToOnly} {
		all, err := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.Phase = p }).AllCtx(context.Background())
		if _, listed := all["revoked"]; listed || len(all) != 1 || err != nil {
			t.Fatalf("%v: got %d sessions, %v: expected only the live one", p, len(all), err)
		}
	}
	readFrom := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.Phase = MigrateReadFrom })
	if stored, err := readFrom.CommitStoredCtx(context.Background(), "revoked", v, deadline); stored || err != nil {
		t.Fatalf("got %v, %v: expected the new store's revocation reported", stored, err)
	}
	c := NewCached(readFrom)
	if err := c.Commit("revoked", v, deadline); err != nil {
		t.Fatal(err)
	}
	mustFind(t, c, "revoked", "")
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("expected NewMigrating to refuse a nil codec")
			}
		}()
		NewMigrating(from, to, nil)
	}()
}

// TestMigrateCost measures what each phase costs in DynamoDB requests and
// the capacity units DynamoDB reports for them, with memstore as the old
// store and a DynamoStore as the new: the extra reads and writes of a
// migration that NewMigrating's godoc and the README state. Sessions are
// under 1 KB, so that a strongly consistent read (of an item or of none)
// is one read unit and a write one write unit. Without a migration a
// Find is 1 read and a Commit or a Delete 1 write.
func TestMigrateCost(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { mp.Shutdown(context.Background()) })
	spy := &spyClient{Client: newClient(t)}
	to := newStore(t, spy, func(o *Options) { o.MeterProvider = mp })
	codec := scs.GobCodec{}
	deadline := time.Now().Add(time.Hour)
	v, _ := codec.Encode(deadline, map[string]any{"v": 1})

	type cost = requestCost
	measure := func(call func() error) cost {
		t.Helper()
		return measureCost(t, reader, spy, func() {
			if err := call(); err != nil {
				t.Fatal(err)
			}
		})
	}
	var seq atomic.Int64
	for _, c := range []struct {
		phase MigratePhase
		// A Find of a session only the old store holds, of one the new
		// store holds, of none; a Commit; a Delete.
		fromOnly, inTo, miss, commit, del cost
	}{
		// Reads the old store; asks the new whether a session it found
		// there is revoked; a Commit removes the new store's copy.
		{MigrateReadFrom, cost{1, 0, 0, 1, 0}, cost{1, 0, 0, 1, 0}, cost{}, cost{0, 0, 1, 0, 1}, cost{0, 1, 0, 0, 1}},
		{MigrateWriteBoth, cost{1, 0, 0, 1, 0}, cost{1, 0, 0, 1, 0}, cost{}, cost{0, 1, 0, 0, 1}, cost{0, 1, 0, 0, 1}},
		// Reads the new store first; a move is a conditional write.
		{MigrateReadTo, cost{1, 1, 0, 1, 1}, cost{1, 0, 0, 1, 0}, cost{1, 0, 0, 1, 0}, cost{0, 1, 0, 0, 1}, cost{0, 1, 0, 0, 1}},
		{MigrateToOnly, cost{1, 1, 0, 1, 1}, cost{1, 0, 0, 1, 0}, cost{1, 0, 0, 1, 0}, cost{0, 1, 0, 0, 1}, cost{0, 1, 0, 0, 1}},
	} {
		from := memstore.NewWithCleanupInterval(0)
		m := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.Phase = c.phase })
		token := func() string { return fmt.Sprintf("tok3n-%d", seq.Add(1)) }
		onlyFrom, both, gone := token(), token(), token()
		for _, tok := range []string{onlyFrom, both, gone} {
			if err := from.Commit(tok, v, deadline); err != nil {
				t.Fatal(err)
			}
		}
		if err := to.Commit(both, v, deadline); err != nil {
			t.Fatal(err)
		}
		find := func(tok string, want bool) func() error {
			return func() error {
				_, found, err := m.Find(tok)
				if err == nil && found != want {
					err = fmt.Errorf("%s: got found %v: expected %v", tok, found, want)
				}
				return err
			}
		}
		for _, op := range []struct {
			what string
			call func() error
			want cost
		}{
			{"a Find of a session only the old store holds", find(onlyFrom, true), c.fromOnly},
			{"a Find of a session both hold", find(both, true), c.inTo},
			{"a Find of no session", find(token(), false), c.miss},
			{"a Commit", func() error { return m.Commit(both, v, deadline) }, c.commit},
			{"a Delete", func() error { return m.Delete(gone) }, c.del},
		} {
			got := measure(op.call)
			t.Logf("%v: %s: %d GetItem, %d PutItem, %d DeleteItem; %.1f read units, %.1f write units", c.phase, op.what, got.gets, got.puts, got.deletes, got.readUnits, got.writeUnits)
			if got != op.want {
				t.Errorf("%v: %s: got %+v: expected %+v", c.phase, op.what, got, op.want)
			}
		}
	}
}

// TestMigrateAllHashTokens: with a new store under Options.HashTokens, a
// session both stores hold (under the old store's token and its hash) is
// listed once, by the key of the store Find reads first. (From the third
// attack review.)
func TestMigrateAllHashTokens(t *testing.T) {
	t.Parallel()
	codec := scs.GobCodec{}
	from := memstore.NewWithCleanupInterval(0)
	to := newStore(t, nil, hashTokens)
	deadline := time.Now().Add(time.Hour)
	v, _ := codec.Encode(deadline, map[string]any{"v": 1})
	for _, tok := range []string{"both", "old-only"} {
		if err := from.Commit(tok, v, deadline); err != nil {
			t.Fatal(err)
		}
	}
	if _, found, err := NewMigrating(from, to, codec).Find("both"); !found || err != nil {
		t.Fatalf("got %v, %v: expected the session moved", found, err)
	}
	for _, c := range []struct {
		phase MigratePhase
		want  []string
	}{
		{MigrateReadFrom, []string{"both", "old-only"}},
		{MigrateWriteBoth, []string{"both", "old-only"}},
		{MigrateReadTo, []string{sessionitem.HashToken("both"), "old-only"}},
		{MigrateToOnly, []string{sessionitem.HashToken("both"), "old-only"}},
	} {
		all, err := NewMigrating(from, to, codec, func(o *MigrateOptions) { o.Phase = c.phase }).AllCtx(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(all)); !slices.Equal(got, slices.Sorted(slices.Values(c.want))) {
			t.Errorf("%v: got %d sessions: expected %d, each once", c.phase, len(got), len(c.want))
		}
	}
}
