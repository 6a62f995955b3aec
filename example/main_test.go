package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

var endpoint string

func TestMain(m *testing.M) {
	os.Exit(ddblocal.Run(m, &endpoint))
}

var (
	visitsRE   = regexp.MustCompile(`<strong id="visits">(\d+)</strong>`)
	sessionsRE = regexp.MustCompile(`<strong id="sessions">(\d+)</strong>`)
)

// get fetches path with client and returns the page's greeting line and
// visit count.
func get(t *testing.T, c *http.Client, base, path string, form url.Values) (greeting, visits string) {
	t.Helper()
	var resp *http.Response
	var err error
	if form != nil {
		resp, err = c.PostForm(base+path, form)
	} else {
		resp, err = c.Get(base + path)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: got status %d: %s", path, resp.StatusCode, body)
	}
	m := visitsRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("%s: no visit count in %s", path, body)
	}
	g := regexp.MustCompile(`<h1>(.*)</h1>`).FindSubmatch(body)
	return string(g[1]), string(m[1])
}

func sessionCookie(t *testing.T, jar http.CookieJar, base string) string {
	u, _ := url.Parse(base)
	for _, c := range jar.Cookies(u) {
		if c.Name == "session" {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// withCookie returns a client without a jar that always sends token.
func withCookie(token string) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.AddCookie(&http.Cookie{Name: "session", Value: token})
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newServer serves the example app on a table of its own.
func newServer(t *testing.T, table string) (*httptest.Server, *dynamostore.DynamoStore) {
	t.Helper()
	client := ddblocal.NewClient(endpoint)
	tel, err := newTelemetry()
	if err != nil {
		t.Fatal(err)
	}
	if err := dynamostore.CreateTable(context.Background(), client, storeOptions(table, tel)); err != nil {
		t.Fatal(err)
	}
	store := dynamostore.NewWithCleanupInterval(costClient{client}, 0, storeOptions(table, tel))
	srv := httptest.NewServer(newApp(store, client, table, tel))
	t.Cleanup(srv.Close)
	return srv, store
}

func TestExampleApp(t *testing.T) {
	srv, store := newServer(t, "example-app")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if g, v := get(t, browser, srv.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected a first visit", g, v)
	}
	if _, v := get(t, browser, srv.URL, "/", nil); v != "2" {
		t.Fatalf("got %s visits: expected 2", v)
	}
	before := sessionCookie(t, jar, srv.URL)
	if _, found, _ := store.Find(storedKey(before)); !found {
		t.Fatal("expected the session in DynamoDB")
	}

	g, v := get(t, browser, srv.URL, "/login", url.Values{"name": {"ann"}})
	if g != "Hello, ann" || v != "3" {
		t.Fatalf("got %q, %s: expected ann logged in, on her third visit", g, v)
	}
	loggedIn := sessionCookie(t, jar, srv.URL)
	if loggedIn == before {
		t.Fatal("expected login to renew the token")
	}
	if g, v := get(t, withCookie(before), srv.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the pre-login token to be worthless", g, v)
	}

	if g, _ := get(t, browser, srv.URL, "/logout", url.Values{}); g != "Hello, visitor" {
		t.Fatalf("got %q: expected logged out", g)
	}
	if g, v := get(t, withCookie(loggedIn), srv.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the logged-out cookie to be worthless", g, v)
	}
	if _, found, _ := store.Find(storedKey(loggedIn)); found {
		t.Fatal("expected the destroyed session gone from DynamoDB")
	}
}

// TestLogOutEverywhere: one user in two browsers sees two sessions, and
// logging out everywhere in one logs the other out too.
func TestLogOutEverywhere(t *testing.T) {
	srv, _ := newServer(t, "example-everywhere")
	var browsers [2]*http.Client
	for i := range browsers {
		jar, _ := cookiejar.New(nil)
		browsers[i] = &http.Client{Jar: jar}
		if g, _ := get(t, browsers[i], srv.URL, "/login", url.Values{"name": {"bo"}}); g != "Hello, bo" {
			t.Fatalf("got %q: expected bo logged in", g)
		}
	}
	// The owner index is eventually consistent: reload until it lists both.
	hang := time.Now().Add(2 * time.Minute)
	for sessionCount(t, browsers[0], srv.URL) != "2" {
		if time.Now().After(hang) {
			t.Fatal("expected the page to show 2 sessions")
		}
		time.Sleep(10 * time.Millisecond) // a poll, not a wait for the event
	}
	if g, _ := get(t, browsers[0], srv.URL, "/logout-everywhere", url.Values{}); g != "Hello, visitor" {
		t.Fatalf("got %q: expected logged out", g)
	}
	if g, v := get(t, browsers[1], srv.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the other browser logged out too", g, v)
	}
}

// sessionCount returns the number of sessions the home page shows.
func sessionCount(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := sessionsRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no session count in %s", body)
	}
	return string(m[1])
}

// TestMetricsPage: after a few page views, /metrics shows the store's
// instruments and the page shows the capacity and the hit rate.
func TestMetricsPage(t *testing.T) {
	srv, _ := newServer(t, "example-metrics")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	for range 3 {
		get(t, browser, srv.URL, "/", nil)
	}
	resp, err := browser.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, re := range []string{`id="write-units">[1-9][0-9.]*<`, `id="read-units">[0-9.]+<`, `id="hit-rate">[0-9]+%<`} {
		if !regexp.MustCompile(re).Match(body) {
			t.Fatalf("got page %s: expected %s", body, re)
		}
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`dynamostore_operations_total{`, `operation="commit"`, `dynamostore_cache_lookups_total{`, `dynamostore_capacity`, `dynamostore_operation_duration_seconds_bucket{`} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("got /metrics %s: expected %s", metrics, want)
		}
	}
}
