package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

var endpoint string

func TestMain(m *testing.M) {
	os.Exit(ddblocal.Run(m, &endpoint))
}

var (
	visitsRE   = regexp.MustCompile(`<strong id="visits">(\d+)</strong>`)
	greetingRE = regexp.MustCompile(`<h1>(.*)</h1>`)
)

// fetch fetches path with client, posting form if it is not nil, and
// returns the page it ends on.
func fetch(t *testing.T, c *http.Client, base, path string, form url.Values) string {
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
	return string(body)
}

// get fetches path with client and returns the page's greeting line and
// visit count.
func get(t *testing.T, c *http.Client, base, path string, form url.Values) (greeting, visits string) {
	t.Helper()
	body := fetch(t, c, base, path, form)
	m := visitsRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%s: no visit count in %s", path, body)
	}
	return greetingRE.FindStringSubmatch(body)[1], m[1]
}

// field returns the text of the element with id on page, and whether
// there is one.
func field(page, id string) (string, bool) {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(page)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(m[1]), true
}

// mustField is field for an element the page must have.
func mustField(t *testing.T, page, id string) string {
	t.Helper()
	s, ok := field(page, id)
	if !ok {
		t.Fatalf("no #%s in page %s", id, page)
	}
	return s
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

// newBrowser returns a client with a cookie jar of its own.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: hangTimeout} // only a hang reaches it: the test fails, naming the request
}

// demo is the example app served on a table of its own, with what a test
// needs to look behind it.
type demo struct {
	URL    string
	table  string
	store  *dynamostore.DynamoStore
	raw    *dynamodb.Client // a plain client, for the raw items
	reader *sdkmetric.ManualReader
	keys   *demoKeys
}

// newServer serves the example app on a table of its own.
func newServer(t *testing.T, table string) *demo {
	t.Helper()
	return newServerWith(t, table, hooks{})
}

// hooks are what a test puts between the app and what it talks to.
type hooks struct {
	client  func(dynamodb.HTTPClient) dynamodb.HTTPClient // the store's HTTP client to DynamoDB
	handler func(http.Handler) http.Handler               // the app
}

// newServerWith is newServer with hooks, those that are not nil.
func newServerWith(t *testing.T, table string, h hooks) *demo {
	t.Helper()
	d := &demo{table: table, raw: ddblocal.NewClient(endpoint), reader: sdkmetric.NewManualReader()}
	storeClient := d.raw
	if h.client != nil {
		storeClient = dynamodb.New(d.raw.Options(), func(o *dynamodb.Options) { o.HTTPClient = h.client(o.HTTPClient) })
	}
	tel, err := newTelemetry(d.reader)
	if err != nil {
		t.Fatal(err)
	}
	if d.keys, err = newDemoKeys(); err != nil {
		t.Fatal(err)
	}
	ddblocal.Setup(t, "CreateTable "+table, func(ctx context.Context) error {
		return dynamostore.CreateTable(ctx, d.raw, storeOptions(table, tel, d.keys))
	})
	d.store = dynamostore.NewWithCleanupInterval(costClient{storeClient}, 0, storeOptions(table, tel, d.keys))
	app := newApp(d.store, d.raw, table, tel, d.keys)
	if h.handler != nil {
		app = h.handler(app)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	d.URL = srv.URL
	return d
}

// capacity returns the read and write capacity units the store has
// consumed so far, for every visitor, by its dynamostore.capacity metric.
func (d *demo) capacity(t *testing.T) units {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := d.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var u units
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[float64])
			if m.Name != "dynamostore.capacity" || !ok {
				continue
			}
			for _, p := range sum.DataPoints {
				if kind, _ := p.Attributes.Value("kind"); kind.AsString() == "read" {
					u.Read += p.Value
				} else {
					u.Write += p.Value
				}
			}
		}
	}
	return u
}

// rawItem reads the item of the session with token as DynamoDB holds it.
func (d *demo) rawItem(t *testing.T, token string) map[string]types.AttributeValue {
	t.Helper()
	out, err := d.raw.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      &d.table,
		Key:            map[string]types.AttributeValue{sessionitem.DefaultKeyAttribute: &types.AttributeValueMemberS{Value: storedKey(token)}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		t.Fatal("no item for the session")
	}
	return out.Item
}

func TestExampleApp(t *testing.T) {
	d := newServer(t, "example-app")

	browser := newBrowser()
	if g, v := get(t, browser, d.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected a first visit", g, v)
	}
	if _, v := get(t, browser, d.URL, "/", nil); v != "2" {
		t.Fatalf("got %s visits: expected 2", v)
	}
	before := sessionCookie(t, browser.Jar, d.URL)
	if _, found, _ := d.store.Find(storedKey(before)); !found {
		t.Fatal("expected the session in DynamoDB")
	}

	g, v := get(t, browser, d.URL, "/login", url.Values{"name": {"ann"}})
	if g != "Hello, ann" || v != "3" {
		t.Fatalf("got %q, %s: expected ann logged in, on her third visit", g, v)
	}
	loggedIn := sessionCookie(t, browser.Jar, d.URL)
	if loggedIn == before {
		t.Fatal("expected login to renew the token")
	}
	if g, v := get(t, withCookie(before), d.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the pre-login token to be worthless", g, v)
	}

	page := fetch(t, browser, d.URL, "/logout", url.Values{})
	if g := greetingRE.FindStringSubmatch(page)[1]; g != "Hello, visitor" {
		t.Fatalf("got %q: expected logged out", g)
	}
	if f := mustField(t, page, "flash"); f != "Logged out: this browser's session is deleted." {
		t.Fatalf("got flash %q: expected the logout said", f)
	}
	if g, v := get(t, withCookie(loggedIn), d.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the logged-out cookie to be worthless", g, v)
	}
	if _, found, _ := d.store.Find(storedKey(loggedIn)); found {
		t.Fatal("expected the destroyed session gone from DynamoDB")
	}
}

// TestLoginBadName: a name the demo does not take is a 400 that says why,
// and logs nobody in.
func TestLoginBadName(t *testing.T) {
	d := newServer(t, "example-bad-name")
	for _, name := range []string{"", "  ", strings.Repeat("a", maxNameBytes+1), "\xff"} {
		resp, err := newBrowser().PostForm(d.URL+"/login", url.Values{"name": {name}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "name: give 1 to 64 bytes of UTF-8 text") {
			t.Fatalf("name %q: got %d %q: expected 400 and what a name must be", name, resp.StatusCode, body)
		}
	}
}

// devicesUntil presses "Show my devices" in browser until the page lists
// want sessions, and returns that page. The owner index is eventually
// consistent, so a listing may lag a login.
func devicesUntil(t *testing.T, browser *http.Client, base string, want string) string {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for {
		page := fetch(t, browser, base, "/devices", nil)
		if n := mustField(t, page, "sessions"); n == want {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never listed %s sessions", want)
		}
		time.Sleep(10 * time.Millisecond) // a poll of the index, not a wait for an event
	}
}

// device is one row of the page's "your devices".
type device struct {
	id, agent string
	current   bool // marked "this device"
	revocable bool // with a button that logs it out
}

var deviceRE = regexp.MustCompile(`(?s)<tr class="device" data-id="([^"]+)">(.*?)</tr>`)

// devices returns the devices page lists, in its order.
func devices(t *testing.T, page string) []device {
	t.Helper()
	var ds []device
	for _, m := range deviceRE.FindAllStringSubmatch(page, -1) {
		agent := regexp.MustCompile(`<span class="agent">([^<]*)<`).FindStringSubmatch(m[2])
		if agent == nil {
			t.Fatalf("no agent in device row %s", m[0])
		}
		ds = append(ds, device{
			id:        m[1],
			agent:     html.UnescapeString(agent[1]),
			current:   strings.Contains(m[2], `id="this-device"`),
			revocable: strings.Contains(m[2], `name="id" value="`+m[1]+`"`),
		})
	}
	return ds
}

// queries counts the Query requests the store sends to DynamoDB.
type queries struct {
	next dynamodb.HTTPClient
	n    atomic.Int64
}

func (q *queries) Do(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".Query") {
		q.n.Add(1)
	}
	return q.next.Do(r)
}

// TestDevicesOnDemand: a view does not query the owner index, the devices
// button does and says what it cost; the hint to log in from another
// browser shows with one session and not with two.
func TestDevicesOnDemand(t *testing.T) {
	q := &queries{}
	d := newServerWith(t, "example-devices-demand", hooks{client: func(next dynamodb.HTTPClient) dynamodb.HTTPClient {
		q.next = next
		return q
	}})
	const hint = "log in from another browser to see two"
	first := newBrowser()
	fetch(t, first, d.URL, "/login", url.Values{"name": {"cy"}})
	page := fetch(t, first, d.URL, "/", nil)
	if _, ok := field(page, "sessions"); ok || !strings.Contains(page, `id="not-listed"`) || !strings.Contains(page, `id="list-devices"`) {
		t.Fatalf("got page %s: expected no list before the button, and the button", page)
	}
	if n := q.n.Load(); n != 0 {
		t.Fatalf("got %d Queries for a login and views: expected none", n)
	}
	page = devicesUntil(t, first, d.URL, "1")
	if q.n.Load() == 0 {
		t.Fatal("got no Query for the list: expected the owner index read")
	}
	if h, _ := field(page, "hint"); !strings.Contains(h, hint) {
		t.Fatalf("got page %s: expected the hint with one session", page)
	}
	if r, err := strconv.ParseFloat(mustField(t, page, "list-read"), 64); err != nil || r <= 0 {
		t.Fatalf("got %q read units for the list: expected what it cost, more than none", mustField(t, page, "list-read"))
	}
	// A view after the list lists nothing.
	before := q.n.Load()
	page = fetch(t, first, d.URL, "/", nil)
	if _, ok := field(page, "sessions"); ok || q.n.Load() != before {
		t.Fatalf("got page %s after %d Queries: expected a view without a list or a Query", page, q.n.Load()-before)
	}

	fetch(t, newBrowser(), d.URL, "/login", url.Values{"name": {"cy"}})
	page = devicesUntil(t, first, d.URL, "2")
	if strings.Contains(page, hint) {
		t.Fatalf("got page %s: expected no hint with two sessions", page)
	}
}

// newDevice returns a browser with a cookie jar of its own that sends
// agent as its User-Agent.
func newDevice(agent string) *http.Client {
	c := newBrowser()
	c.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Header.Set("User-Agent", agent)
		return http.DefaultTransport.RoundTrip(r)
	})
	return c
}

// TestDevicesThisDevice: one user in two browsers; each lists both, by the
// User-Agent each logged in with, and marks its own as "this device", with
// no button to log it out there.
func TestDevicesThisDevice(t *testing.T) {
	d := newServer(t, "example-this-device")
	agents := []string{"Phone <b>&amp; 1</b>", "Laptop 2"}
	var browsers []*http.Client
	for _, a := range agents {
		b := newDevice(a)
		fetch(t, b, d.URL, "/login", url.Values{"name": {"di"}})
		browsers = append(browsers, b)
	}
	for i, b := range browsers {
		ds := devices(t, devicesUntil(t, b, d.URL, "2"))
		if len(ds) != 2 || ds[0].id == ds[1].id {
			t.Fatalf("browser %d: got devices %+v: expected two", i, ds)
		}
		for _, dev := range ds {
			mine := dev.agent == agents[i]
			if !mine && dev.agent != agents[1-i] {
				t.Fatalf("browser %d: got agent %q: expected one of %q", i, dev.agent, agents)
			}
			if dev.current != mine || dev.revocable == mine {
				t.Fatalf("browser %d: got %+v: expected this device marked and not revocable, the other not marked and revocable", i, dev)
			}
		}
	}
}

// lagging makes the owner index look as it does just after a login,
// before it caught up: while on, each Query the store sends asks the real
// index for an owner no session has, and so lists nothing.
type lagging struct {
	next dynamodb.HTTPClient
	on   atomic.Bool
}

func (l *lagging) Do(r *http.Request) (*http.Response, error) {
	if !l.on.Load() || !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".Query") {
		return l.next.Do(r)
	}
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return nil, err
	}
	values, ok := in["ExpressionAttributeValues"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a Query without ExpressionAttributeValues: %v", in)
	}
	values[":o"] = map[string]any{"S": "an owner no session has"}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return l.next.Do(r)
}

// TestDevicesThisDeviceNotListedYet: while the owner index has not listed
// the session of the request that lists devices, the page still shows it,
// from the request's own session, as this device; once the index lists it,
// it shows once.
func TestDevicesThisDeviceNotListedYet(t *testing.T) {
	lag := &lagging{}
	d := newServerWith(t, "example-this-device-lag", hooks{client: func(next dynamodb.HTTPClient) dynamodb.HTTPClient {
		lag.next = next
		return lag
	}})
	b := newDevice("Tablet 3")
	fetch(t, b, d.URL, "/login", url.Values{"name": {"ed"}})
	lag.on.Store(true)
	ds := devices(t, fetch(t, b, d.URL, "/devices", nil))
	if len(ds) != 1 || !ds[0].current || ds[0].revocable || ds[0].agent != "Tablet 3" {
		t.Fatalf("got devices %+v while the index lags: expected this device alone, by its User-Agent, marked and not revocable", ds)
	}
	lag.on.Store(false)
	listed := devices(t, devicesUntil(t, b, d.URL, "1"))
	if len(listed) != 1 || listed[0] != ds[0] {
		t.Fatalf("got devices %+v once listed: expected the same one row %+v", listed, ds[0])
	}
}

// TestRevokeNotMine: a user who posts another user's session ID, an
// unknown one or none logs nobody out, and the page says nothing was.
func TestRevokeNotMine(t *testing.T) {
	d := newServer(t, "example-revoke-not-mine")
	ann, bo := newDevice("ann's"), newDevice("bo's")
	fetch(t, ann, d.URL, "/login", url.Values{"name": {"ann"}})
	fetch(t, bo, d.URL, "/login", url.Values{"name": {"bo"}})
	bos := devices(t, devicesUntil(t, bo, d.URL, "1"))
	devicesUntil(t, ann, d.URL, "1")
	for _, id := range []string{bos[0].id, "not-an-id", ""} {
		page := fetch(t, ann, d.URL, "/devices/revoke", url.Values{"id": {id}})
		if f := mustField(t, page, "flash"); !strings.HasPrefix(f, "No device of yours has that ID: nothing was logged out.") {
			t.Fatalf("ID %q: got flash %q: expected that nothing was logged out", id, f)
		}
		for name, b := range map[string]*http.Client{"ann": ann, "bo": bo} {
			if g, _ := get(t, b, d.URL, "/", nil); g != "Hello, "+name {
				t.Fatalf("ID %q: got %q: expected %s still logged in", id, g, name)
			}
		}
	}
}

// TestRevokeDevice: a user logs out their other device by its button's
// ID; that device is logged out on its next request, this one is not.
func TestRevokeDevice(t *testing.T) {
	d := newServer(t, "example-revoke")
	here, there := newDevice("here"), newDevice("there")
	fetch(t, here, d.URL, "/login", url.Values{"name": {"ed"}})
	fetch(t, there, d.URL, "/login", url.Values{"name": {"ed"}})
	var other device
	for _, dev := range devices(t, devicesUntil(t, here, d.URL, "2")) {
		if !dev.current {
			other = dev
		}
	}
	if other.agent != "there" {
		t.Fatalf("got other device %+v: expected there", other)
	}
	page := fetch(t, here, d.URL, "/devices/revoke", url.Values{"id": {other.id}})
	if f := mustField(t, page, "flash"); f != "Logged out that device: its next request finds no session." {
		t.Fatalf("got flash %q: expected the device logged out", f)
	}
	if ds := devices(t, page); len(ds) != 1 || !ds[0].current {
		t.Fatalf("got devices %+v after the revoke: expected this one alone", ds)
	}
	if g, v := get(t, there, d.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the revoked device logged out", g, v)
	}
	if g, _ := get(t, here, d.URL, "/", nil); g != "Hello, ed" {
		t.Fatalf("got %q: expected this device still logged in", g)
	}
}

// TestLogOutOtherDevices: one user in three browsers; logging out the
// other devices from one logs out the two others, says so, and keeps this
// one logged in.
func TestLogOutOtherDevices(t *testing.T) {
	d := newServer(t, "example-others")
	var browsers []*http.Client
	for i := range 3 {
		b := newDevice(fmt.Sprint("device ", i))
		fetch(t, b, d.URL, "/login", url.Values{"name": {"fay"}})
		browsers = append(browsers, b)
	}
	devicesUntil(t, browsers[0], d.URL, "3")
	page := fetch(t, browsers[0], d.URL, "/devices/others", url.Values{})
	if f := mustField(t, page, "flash"); f != "Logged out 2 other devices; this one stays logged in." {
		t.Fatalf("got flash %q: expected the 2 other devices logged out said", f)
	}
	if ds := devices(t, page); len(ds) != 1 || !ds[0].current || ds[0].agent != "device 0" {
		t.Fatalf("got devices %+v: expected this one alone", ds)
	}
	if g, _ := get(t, browsers[0], d.URL, "/", nil); g != "Hello, fay" {
		t.Fatalf("got %q: expected this device still logged in", g)
	}
	for i, b := range browsers[1:] {
		if g, v := get(t, b, d.URL, "/", nil); g != "Hello, visitor" || v != "1" {
			t.Fatalf("browser %d: got %q, %s: expected it logged out", i+1, g, v)
		}
	}
}

// TestLogOutEverywhere: one user in two browsers sees two sessions, and
// logging out everywhere in one logs the other out too and says how many
// sessions it ended.
func TestLogOutEverywhere(t *testing.T) {
	d := newServer(t, "example-everywhere")
	var browsers [2]*http.Client
	for i := range browsers {
		browsers[i] = newBrowser()
		if g, _ := get(t, browsers[i], d.URL, "/login", url.Values{"name": {"bo"}}); g != "Hello, bo" {
			t.Fatalf("got %q: expected bo logged in", g)
		}
	}
	devicesUntil(t, browsers[0], d.URL, "2")
	page := fetch(t, browsers[0], d.URL, "/logout-everywhere", url.Values{})
	if g := greetingRE.FindStringSubmatch(page)[1]; g != "Hello, visitor" {
		t.Fatalf("got %q: expected logged out", g)
	}
	if f := mustField(t, page, "flash"); f != "Logged out everywhere: 2 sessions deleted." {
		t.Fatalf("got flash %q: expected the 2 sessions deleted said", f)
	}
	// The message shows once.
	if page := fetch(t, browsers[0], d.URL, "/", nil); strings.Contains(page, `id="flash"`) {
		t.Fatalf("got page %s: expected the message gone after it showed", page)
	}
	if g, v := get(t, browsers[1], d.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the other browser logged out too", g, v)
	}
}

// TestCrossSitePostRefused: a POST that a browser sends from another site
// (CSRF), told by its Sec-Fetch-Site or, without one, its Origin header,
// is refused with 403 and logs no one out; the same POST from the page's
// own origin logs out.
func TestCrossSitePostRefused(t *testing.T) {
	d := newServer(t, "example-cross-site")
	browser := newBrowser()
	if g, _ := get(t, browser, d.URL, "/login", url.Values{"name": {"fay"}}); g != "Hello, fay" {
		t.Fatalf("got %q: expected fay logged in", g)
	}
	post := func(header http.Header) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, d.URL+"/logout-everywhere", strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Named by the header a test sets: the request's own carries the
	// session cookie, which a failure must not print.
	for _, h := range []struct{ name, value string }{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://attacker.example"},
	} {
		if code := post(http.Header{h.name: {h.value}}); code != http.StatusForbidden {
			t.Fatalf("a POST with %s: %s: got status %d: expected 403", h.name, h.value, code)
		}
		if g, _ := get(t, browser, d.URL, "/", nil); g != "Hello, fay" {
			t.Fatalf("after a POST with %s: %s: got %q: expected fay still logged in", h.name, h.value, g)
		}
	}
	if code := post(http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {d.URL}}); code != http.StatusOK {
		t.Fatalf("a same-origin POST: got status %d: expected 200", code)
	}
	if g, _ := get(t, browser, d.URL, "/", nil); g != "Hello, visitor" {
		t.Fatalf("after a same-origin POST: got %q: expected logged out", g)
	}
}

// lastCost returns the page's "your previous request": what it was, and
// its read and write units.
func lastCost(t *testing.T, page string) (request, read, write string) {
	t.Helper()
	return mustField(t, page, "last-request"), mustField(t, page, "last-read"), mustField(t, page, "last-write")
}

// TestCostsPerVisitor: what a page says the previous request cost is this
// browser's previous request, exactly as DynamoDB reported it, and never
// another visitor's.
func TestCostsPerVisitor(t *testing.T) {
	d := newServer(t, "example-costs")
	a, b := newBrowser(), newBrowser()
	fetch(t, a, d.URL, "/", nil)
	fetch(t, a, d.URL, "/login", url.Values{"name": {"ann"}})
	if d.capacity(t).Write == 0 {
		t.Fatal("expected ann's requests to have written")
	}

	before := d.capacity(t)
	page := fetch(t, b, d.URL, "/", nil)
	spent := d.capacity(t)
	spent.Read -= before.Read
	spent.Write -= before.Write
	if _, ok := field(page, "last-request"); ok || !strings.Contains(page, `id="no-last"`) {
		t.Fatalf("got page %s: expected no previous request on a first visit", page)
	}
	for _, id := range []string{"read-units", "write-units"} {
		if u := mustField(t, page, id); u != "0.0" {
			t.Fatalf("got %s %s on a first visit: expected 0.0, none of ann's", id, u)
		}
	}

	page = fetch(t, b, d.URL, "/", nil)
	req, read, write := lastCost(t, page)
	if req != "GET /" || read != fmt.Sprintf("%.1f", spent.Read) || write != fmt.Sprintf("%.1f", spent.Write) {
		t.Fatalf("got %s: %s read, %s write: expected GET /: %.1f, %.1f, what DynamoDB reported for it", req, read, write, spent.Read, spent.Write)
	}
	if spent.Write == 0 {
		t.Fatal("expected the first visit to write its new session")
	}

	// ann's page shows her own login, redirect and all.
	page = fetch(t, a, d.URL, "/", nil)
	if req, _, _ := lastCost(t, page); req != "GET /" {
		t.Fatalf("got %s as ann's previous request: expected her view", req)
	}
	if n := mustField(t, page, "requests"); n != "3" {
		t.Fatalf("got %s requests for ann: expected 3 (a view, a login and its redirect)", n)
	}
}

// TestCostsUnderConcurrency: two browsers at once; what each page says
// they spent adds up to what the store spent, so no request's cost went to
// the other browser or was lost.
func TestCostsUnderConcurrency(t *testing.T) {
	d := newServer(t, "example-costs-concurrent")
	browsers := []*http.Client{newBrowser(), newBrowser()}
	names := []string{"ann", "bo"}
	var wg sync.WaitGroup
	errs := make(chan error, len(browsers))
	for i, c := range browsers {
		wg.Go(func() {
			paths := []string{"/", "/login", "/", "/devices", "/", "/logout", "/"}
			for _, p := range paths {
				var resp *http.Response
				var err error
				if p == "/" || p == "/devices" {
					resp, err = c.Get(d.URL + p)
				} else {
					resp, err = c.PostForm(d.URL+p, url.Values{"name": {names[i]}})
				}
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s: status %d", p, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	spent := d.capacity(t)
	var shown units
	for _, c := range browsers {
		page := fetch(t, c, d.URL, "/", nil)
		for id, u := range map[string]*float64{"read-units": &shown.Read, "write-units": &shown.Write} {
			f, err := strconv.ParseFloat(mustField(t, page, id), 64)
			if err != nil {
				t.Fatal(err)
			}
			*u += f
		}
	}
	if math.Abs(shown.Read-spent.Read) > 0.11 || math.Abs(shown.Write-spent.Write) > 0.11 {
		t.Fatalf("got %.1f read, %.1f write units on the two pages: expected %.1f, %.1f, what the store spent", shown.Read, shown.Write, spent.Read, spent.Write)
	}
	if spent.Read == 0 || spent.Write == 0 {
		t.Fatalf("got %.1f read, %.1f write units: expected the counts to read and the views to write", spent.Read, spent.Write)
	}
}

// gate holds the store's next PutItem, once armed, until released.
type gate struct {
	next    dynamodb.HTTPClient
	armed   atomic.Bool
	held    chan struct{} // closed when it holds one
	release chan struct{}
	once    sync.Once
}

// open releases what the gate holds, and all it will hold.
func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) Do(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutItem") && g.armed.CompareAndSwap(true, false) {
		close(g.held)
		select {
		case <-g.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.next.Do(r)
}

// TestCostsOverlapping: while ann's view waits for its Commit, bo's view
// runs from start to end; each page then shows its own request's cost,
// exactly what DynamoDB reported for it, none of the other's.
func TestCostsOverlapping(t *testing.T) {
	g := &gate{held: make(chan struct{}), release: make(chan struct{})}
	d := newServerWith(t, "example-costs-overlap", hooks{client: func(next dynamodb.HTTPClient) dynamodb.HTTPClient {
		g.next = next
		return g
	}})
	t.Cleanup(g.open) // before the server closes: it waits for ann's view
	ann, bo := newBrowser(), newBrowser()
	fetch(t, ann, d.URL, "/login", url.Values{"name": {"ann"}})
	fetch(t, bo, d.URL, "/", nil)

	diff := func(a, b units) units { return units{b.Read - a.Read, b.Write - a.Write} }
	c0 := d.capacity(t)
	g.armed.Store(true)
	annDone := make(chan error, 1)
	go func() {
		resp, err := ann.Get(d.URL + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		annDone <- err
	}()
	select {
	case <-g.held:
	case <-time.After(hangTimeout):
		t.Fatal("ann's Commit never came")
	}
	c1 := d.capacity(t)
	fetch(t, bo, d.URL, "/", nil)
	c2 := d.capacity(t)
	g.open()
	select {
	case err := <-annDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangTimeout):
		t.Fatal("ann's view never ended")
	}
	c3 := d.capacity(t)
	boCost, annCost := diff(c1, c2), diff(c0, c1)
	annCost.Read += diff(c2, c3).Read
	annCost.Write += diff(c2, c3).Write
	if annCost.Write == 0 || boCost.Write == 0 {
		t.Fatalf("got %v for ann and %v for bo: expected each view to write", annCost, boCost)
	}
	for _, v := range []struct {
		name    string
		browser *http.Client
		want    units
	}{{"ann", ann, annCost}, {"bo", bo, boCost}} {
		req, read, write := lastCost(t, fetch(t, v.browser, d.URL, "/", nil))
		if req != "GET /" || read != fmt.Sprintf("%.1f", v.want.Read) || write != fmt.Sprintf("%.1f", v.want.Write) {
			t.Fatalf("%s: got %s: %s read, %s write: expected GET /: %.1f, %.1f", v.name, req, read, write, v.want.Read, v.want.Write)
		}
	}
}

// stall is a ResponseWriter that, once armed, sends what its request
// wrote first and then holds the request until released, as a busy
// server may between a response's start and its handler's return.
type stall struct {
	http.ResponseWriter
	g *gate // armed, held and released as the gate of a PutItem is
}

func (s stall) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	if s.g.armed.CompareAndSwap(true, false) {
		http.NewResponseController(s.ResponseWriter).Flush()
		close(s.g.held)
		<-s.g.release
	}
	return n, err
}

// TestCostRecordedAsResponseStarts: a browser that sends its next request
// as soon as the previous one's response starts, while that one's handler
// has yet to return, sees that request's cost.
func TestCostRecordedAsResponseStarts(t *testing.T) {
	g := &gate{held: make(chan struct{}), release: make(chan struct{})}
	d := newServerWith(t, "example-costs-early", hooks{handler: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(stall{w, g}, r) })
	}})
	t.Cleanup(g.open)
	ann := newBrowser()
	fetch(t, ann, d.URL, "/login", url.Values{"name": {"ann"}}) // two requests, with the redirect
	g.armed.Store(true)
	annDone := make(chan error, 1)
	go func() {
		resp, err := ann.Get(d.URL + "/") // returns at the headers, cookies in the jar
		if err == nil {
			resp.Body.Close()
		}
		annDone <- err
	}()
	select {
	case <-g.held:
	case <-time.After(hangTimeout):
		t.Fatal("the view never started its response")
	}
	select {
	case err := <-annDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangTimeout):
		t.Fatal("the view's response never reached the browser")
	}
	page := fetch(t, ann, d.URL, "/", nil)
	g.open()
	if n := mustField(t, page, "requests"); n != "3" {
		t.Fatalf("got %s requests before this one: expected 3, the held view's cost recorded", n)
	}
	if req, _, write := lastCost(t, page); req != "GET /" || write == "0.0" {
		t.Fatalf("got %s: %s write units: expected the held view's Commit", req, write)
	}
}

// TestCacheHitReadsNothing: a logged-in view that the cache answers costs
// no read units, as the page says, and the page says so.
func TestCacheHitReadsNothing(t *testing.T) {
	d := newServer(t, "example-cache-hit")
	browser := newBrowser()
	fetch(t, browser, d.URL, "/login", url.Values{"name": {"ann"}})
	prev := devicesUntil(t, browser, d.URL, "1")
	deadline := time.Now().Add(hangTimeout)
	var page string
	for {
		// The cache's counts on a page include its own Find: one more hit
		// and no more misses than the page before means a hit.
		before := d.capacity(t)
		page = fetch(t, browser, d.URL, "/", nil)
		spent := d.capacity(t)
		hit := mustField(t, page, "misses") == mustField(t, prev, "misses") &&
			atoi(t, mustField(t, page, "hits")) == atoi(t, mustField(t, prev, "hits"))+1
		prev = page
		if !hit {
			if time.Now().After(deadline) {
				t.Fatal("no view was a cache hit")
			}
			continue // the copy outlived MaxStale on a busy machine: try again
		}
		if spent.Read != before.Read {
			t.Fatalf("got %.1f read units for a view the cache answered: expected none", spent.Read-before.Read)
		}
		next := fetch(t, browser, d.URL, "/", nil)
		if req, read, _ := lastCost(t, next); req != "GET /" || read != "0.0" {
			t.Fatalf("got %s: %s read units for a cached view: expected 0.0", req, read)
		}
		if !strings.Contains(next, `A Find the cache answers costs no read units`) {
			t.Fatalf("got page %s: expected it to say what a cache hit costs", next)
		}
		return
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSealedOpaqueOwner: the item holds sealed data, and an owner that is
// the user's opaque ID, not the name typed; the page shows both.
func TestSealedOpaqueOwner(t *testing.T) {
	d := newServer(t, "example-sealed")
	browser := newBrowser()
	const name = "annabel"
	fetch(t, browser, d.URL, "/login", url.Values{"name": {name}})
	page := fetch(t, browser, d.URL, "/", nil)
	item := d.rawItem(t, sessionCookie(t, browser.Jar, d.URL))

	owner, _ := item[sessionitem.DefaultOwnerAttribute].(*types.AttributeValueMemberS)
	if owner == nil || owner.Value != d.keys.userID(name) || strings.Contains(owner.Value, name) {
		t.Fatalf("got owner %v: expected the opaque ID %s, not the name", item[sessionitem.DefaultOwnerAttribute], d.keys.userID(name))
	}
	if id := mustField(t, page, "user-id"); id != owner.Value || mustField(t, page, "owner") != owner.Value {
		t.Fatalf("got page %s: expected the owner %s shown", page, owner.Value)
	}
	data, f, err := sessionitem.Data(item, sessionitem.DefaultDataAttribute)
	if err != nil || !f.Sealed {
		t.Fatalf("got format %+v, %v: expected sealed data", f, err)
	}
	if bytes.Contains(data, []byte(name)) {
		t.Fatal("got the name in the stored data: expected it sealed")
	}
	if got := mustField(t, page, "format"); got != "sealed (AEAD)" {
		t.Fatalf("got format %q on the page: expected sealed", got)
	}
	if !strings.Contains(page, "sealed with a key generated when this demo started") {
		t.Fatalf("got page %s: expected it to say the key is the demo's, made at start", page)
	}
}

// TestMetricsPage: after a few page views, /metrics shows the store's
// instruments and the page shows the capacity and the hit rate.
func TestMetricsPage(t *testing.T) {
	d := newServer(t, "example-metrics")
	browser := newBrowser()
	for range 3 {
		fetch(t, browser, d.URL, "/", nil)
	}
	body := fetch(t, browser, d.URL, "/", nil)
	for _, re := range []string{`id="write-units">[1-9][0-9.]*<`, `id="read-units">[0-9.]+<`, `id="hit-rate">[0-9]+%<`} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Fatalf("got page %s: expected %s", body, re)
		}
	}
	resp, err := http.Get(d.URL + "/metrics")
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
