package rediscache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/v2"

	"github.com/dynamostore/dynamostore"
)

// appOn serves an scs application on store, as before and after a move:
// /login?user=U logs in as U, /put?v=V stores V, /get writes the user and
// V ("anonymous" when no one is logged in).
func appOn(t *testing.T, store scs.Store) *httptest.Server {
	sm := scs.New()
	sm.Store = store
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), "user_id", r.FormValue("user")) })
	mux.HandleFunc("GET /put", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), "v", r.FormValue("v")) })
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		if user := sm.GetString(r.Context(), "user_id"); user != "" {
			fmt.Fprintf(w, "%s %s", user, sm.GetString(r.Context(), "v"))
			return
		}
		fmt.Fprint(w, "anonymous")
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, browser *http.Client, srv *httptest.Server, path string) string {
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

// TestMigrateFromGoredisstore: an application on scs's goredisstore (on
// Debian's redis-server) moves to DynamoDB behind a CachedStore without
// logging anyone out: sessions created before the switch stay logged in
// (the cookie replayed) and move on first use with their deadline; one
// logged out everywhere after the move stays out though Redis still holds
// its copy; one past its deadline is never served. goredisstore panics on
// scs's plain methods: the MigratingStore calls its Ctx ones.
func TestMigrateFromGoredisstore(t *testing.T) {
	t.Parallel()
	from := goredisstore.New(newRedis(t))
	codec := scs.GobCodec{}
	to := newStore(t, newClient(t), newTable(t), func(o *dynamostore.Options) { o.Owner = dynamostore.SessionValue(codec, "user_id") })
	before := appOn(t, from)
	browser := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: hangTimeout}
	}
	ann, bo, cy := browser(), browser(), browser()
	get(t, ann, before, "/login?user=ann")
	get(t, ann, before, "/put?v=a1")
	get(t, bo, before, "/login?user=bo")
	past, err := codec.Encode(time.Now().Add(-time.Minute), map[string]any{"user_id": "cy"})
	if err != nil {
		t.Fatal(err)
	}
	const pastToken = "cGFzdC1pdHMtZGVhZGxpbmUtMDAwMDAwMDAwMDAwMDAwMDA"
	if err := from.CommitCtx(context.Background(), pastToken, past, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(before.URL)
	cy.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: pastToken}})

	m := dynamostore.NewMigrating(from, to, codec)
	c := dynamostore.NewCached(m)
	after := appOn(t, c)
	if got := get(t, ann, after, "/get"); got != "ann a1" {
		t.Fatalf("got %q: expected ann logged in after the switch", got)
	}
	if got := get(t, bo, after, "/get"); got != "bo " {
		t.Fatalf("got %q: expected bo logged in after the switch", got)
	}
	if st := m.Stats(); st.Moved != 2 {
		t.Fatalf("got %+v: expected two sessions moved", st)
	}
	get(t, ann, after, "/put?v=a2")
	if got := get(t, ann, after, "/get"); got != "ann a2" {
		t.Fatalf("got %q: expected the write after the switch", got)
	}
	if got := get(t, cy, after, "/get"); got != "anonymous" {
		t.Fatalf("got %q: expected a session past its deadline never served", got)
	}

	// bo logged out everywhere: out for good.
	deadline := time.Now().Add(hangTimeout)
	for {
		n, err := c.DeleteOwner(context.Background(), "bo")
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the owner index never listed bo's session")
		}
		time.Sleep(10 * time.Millisecond) // a poll of the eventually consistent index
	}
	all, err := from.AllCtx(context.Background())
	if err != nil || len(all) != 3 {
		t.Fatalf("got %d, %v: expected Redis to hold all three sessions still", len(all), err)
	}
	if got := get(t, bo, after, "/get"); got != "anonymous" {
		t.Fatalf("got %q: expected bo logged out, Redis's copy never moved back", got)
	}
}
