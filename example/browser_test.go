package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowser drives the demo page in headless Chromium (Debian's package,
// which `make test` installs): a first visit, a login, a few visits, the
// panels' contents (a sealed item whose owner is the user's ID, the
// previous view's cost), a logout and what the page says of it, and then
// the logged-out cookie, which no longer works. It saves a screenshot of the logged-in page as demo.png in
// the test's artifact directory (.artifacts under `make test`).
func TestBrowser(t *testing.T) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: `make chromium` (part of `make test`) installs Debian's package")
	}
	d := newServer(t, "example-browser")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container
		chromedp.WindowSize(1200, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, hangTimeout) // only a hang reaches it
	defer cancel()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}

	do("first visit", chromedp.Navigate(d.URL), chromedp.WaitVisible(chromedp.CSS("#no-item")))
	if v := text("#visits"); v != "1" {
		t.Fatalf("got %s visits: expected the first", v)
	}
	do("log in",
		chromedp.SendKeys(chromedp.CSS("#name"), "ann"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#logout")),
	)
	for range 3 {
		do("visit", chromedp.Navigate(d.URL), chromedp.WaitVisible(chromedp.CSS("#stored-key")))
	}
	if v, u := text("#visits"), text("#user"); v != "5" || u != "ann" {
		t.Fatalf("got %s visits by %q: expected ann's fifth", v, u)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	token := ""
	for _, c := range cookies.Cookies {
		if c.Name == "session" {
			token = c.Value
		}
	}
	// The item panel shows the session's item: its key is the hash of the
	// cookie's token, and the script counts its expiry down.
	if k := text("#stored-key"); token == "" || k != storedKey(token) {
		t.Fatalf("got stored key %q for token %q: expected its hash", k, token)
	}
	if n, _ := strconv.Atoi(text("#item-bytes")); n <= 0 || text("#format") != "sealed (AEAD)" {
		t.Fatalf("got item %q bytes, format %q: expected a sealed item", text("#item-bytes"), text("#format"))
	}
	if o := text("#owner"); o != d.keys.userID("ann") {
		t.Fatalf("got owner %q: expected ann's opaque ID", o)
	}
	if e := text("#expires"); !regexp.MustCompile(`^\d+h \d+m \d+s$`).MatchString(e) {
		t.Fatalf("got expiry %q: expected the script's countdown", e)
	}
	if req, w := text("#last-request"), text("#last-write"); req != "GET /" || w == "0.0" {
		t.Fatalf("got %s, %s write units for the previous request: expected a view's Commit", req, w)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.ArtifactDir(), "demo.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login")))
	if f := text("#flash"); f != "Logged out: this browser's session is deleted." {
		t.Fatalf("got %q: expected the logout said", f)
	}
	// The cookie from before the logout no longer works.
	if g, v := get(t, withCookie(token), d.URL, "/", nil); g != "Hello, visitor" || v != "1" {
		t.Fatalf("got %q, %s: expected the logged-out cookie to be worthless", g, v)
	}
	if _, found, err := d.store.Find(storedKey(token)); found || err != nil {
		t.Fatalf("got %v, %v: expected the session gone from DynamoDB", found, err)
	}
}

// TestBrowserDevices drives "your devices" in two browser contexts of one
// headless Chromium, whose cookies are apart as two browsers' are: the same
// user logs in from each, each lists two devices, its own marked "this
// device", and one logs the other out with its button; the other is logged
// out on its next request, and the first is not.
func TestBrowserDevices(t *testing.T) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: `make chromium` (part of `make test`) installs Debian's package")
	}
	d := newServer(t, "example-browser-devices")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // root in a container
		chromedp.WindowSize(1200, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	bctx, cancel = context.WithTimeout(bctx, hangTimeout) // only a hang reaches it
	defer cancel()
	if err := chromedp.Do(bctx); err != nil { // starts the browser the contexts share
		t.Fatal(err)
	}
	agents := []string{"Device A", "Device B"}
	var tabs []context.Context
	for _, agent := range agents {
		ctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
		defer cancel()
		if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: agent}); err != nil {
			t.Fatal(err)
		}
		tabs = append(tabs, ctx)
	}
	do := func(i int, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tabs[i], steps...); err != nil {
			t.Fatalf("%s, %s: %v", agents[i], what, err)
		}
	}
	text := func(i int, sel string) string {
		t.Helper()
		s, err := chromedp.Run(tabs[i], chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: read %s: %v", agents[i], sel, err)
		}
		return s
	}
	// rows returns the devices listed, by agent, each with whether it is
	// marked as this device.
	rows := func(i int) map[string]bool {
		t.Helper()
		got, err := chromedp.Run(tabs[i], chromedp.Evaluate[map[string]bool](`Object.fromEntries(
			[...document.querySelectorAll("tr.device")].map(r => [r.querySelector(".agent").textContent, r.querySelector("#this-device") !== null]))`))
		if err != nil {
			t.Fatalf("%s: read the devices: %v", agents[i], err)
		}
		return got
	}

	for i := range tabs {
		do(i, "log in",
			chromedp.Navigate(d.URL),
			chromedp.SendKeys(chromedp.CSS("#name"), "gus"),
			chromedp.Click(chromedp.CSS("#login")),
			chromedp.WaitVisible(chromedp.CSS("#logout")),
		)
	}
	// The owner index is eventually consistent: list until it has both.
	deadline := time.Now().Add(hangTimeout)
	for i := range tabs {
		for {
			do(i, "list devices", chromedp.Click(chromedp.CSS("#list-devices")), chromedp.WaitVisible(chromedp.CSS("#sessions")))
			if text(i, "#sessions") == "2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the page never listed two devices", agents[i])
			}
		}
		if got := rows(i); len(got) != 2 || !got[agents[i]] || got[agents[1-i]] {
			t.Fatalf("%s: got devices %v: expected both, this one marked", agents[i], got)
		}
	}
	png, err := chromedp.Run(tabs[0], chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.ArtifactDir(), "devices.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// A logs B out with B's button: the one revoke button on A's page.
	do(0, "log out the other device",
		chromedp.Click(chromedp.CSS("button.revoke")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	)
	if f := text(0, "#flash"); f != "Logged out that device: its next request finds no session." {
		t.Fatalf("got %q: expected the other device logged out said", f)
	}
	if got := rows(0); len(got) != 1 || !got[agents[0]] {
		t.Fatalf("got devices %v after the revoke: expected this one alone", got)
	}
	do(1, "B's next request", chromedp.Navigate(d.URL), chromedp.WaitVisible(chromedp.CSS("#login")))
	if u := text(1, "#user"); u != "(logged out)" {
		t.Fatalf("got user %q on B: expected it logged out", u)
	}
	do(0, "A's next request", chromedp.Navigate(d.URL), chromedp.WaitVisible(chromedp.CSS("#logout")))
	if u := text(0, "#user"); u != "gus" {
		t.Fatalf("got user %q on A: expected it still logged in", u)
	}
}

// hangTimeout is how long the browser test waits before it calls a wait a
// hang: nothing it waits for takes that long on a busy machine.
const hangTimeout = 2 * time.Minute
