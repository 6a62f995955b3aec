package dynamostore

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The store's expiry rule end to end: a session is live until its expiry, to
// the millisecond, and never after; the store, a CachedStore over it, All
// and scs itself agree.

// TestExpiryToTheMillisecond commits sessions that expire 100 ms, 300 ms and
// 1.9 s ahead, committed at the start, the middle and the end of a second,
// and reads each just before its expiry and at it, through the DynamoStore,
// a CachedStore that made the Commit, a CachedStore that did not, and All.
func TestExpiryToTheMillisecond(t *testing.T) {
	t.Parallel()
	// One clock for the store and the caches, moved by the test, hours
	// ahead of real time where DynamoDB Local's own TTL cannot reach.
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	s := newStoreWith(t, nil, hooks{now: now})
	cached := func() *CachedStore {
		c := NewCached(s, func(o *CacheOptions) { o.MaxStale = time.Hour })
		c.now, c.cache.(*memCache).now = now, now
		return c
	}
	second := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	for _, at := range []time.Duration{400 * time.Microsecond, 500*time.Millisecond + 400*time.Microsecond, 999*time.Millisecond + 400*time.Microsecond} {
		for _, ahead := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 1900 * time.Millisecond} {
			token := fmt.Sprintf("commit-at-%d-for-%d", at.Milliseconds(), ahead.Milliseconds())
			committed := second.Add(at)
			expiry := committed.Add(ahead)
			clock.Store(committed.UnixNano())
			warm, cold := cached(), cached()
			if err := warm.Commit(token, []byte(token), expiry); err != nil {
				t.Fatal(err)
			}
			// TTL's whole second is never before the expiry.
			ttl, _ := strconv.ParseInt(rawItem(t, s, token)["expires"].(*types.AttributeValueMemberN).Value, 10, 64)
			if time.Unix(ttl, 0).Before(expiry) {
				t.Fatalf("%s: got TTL second %d, before the expiry %v", token, ttl, expiry)
			}
			last := expiry.Truncate(time.Millisecond) // the store keeps milliseconds
			for _, check := range []struct {
				at    time.Time
				found bool
			}{
				{committed, true},
				{last.Add(-time.Millisecond), true},
				{last.Add(-time.Nanosecond), true},
				{last, false},
				{expiry, false},
				{expiry.Add(time.Millisecond), false},
			} {
				clock.Store(check.at.UnixNano())
				for name, store := range map[string]scs.Store{"DynamoStore": s, "the committing CachedStore": warm, "another CachedStore": cold} {
					b, found, err := store.Find(token)
					if err != nil || found != check.found || found && string(b) != token {
						t.Fatalf("%s, %s at %v: got %q, %v, %v: expected found=%v", token, name, check.at.Sub(committed), b, found, err, check.found)
					}
				}
				all, err := s.All()
				if _, found := all[token]; err != nil || found != check.found {
					t.Fatalf("%s, All at %v: got found=%v, %v: expected found=%v", token, check.at.Sub(committed), found, err, check.found)
				}
			}
		}
	}
}

// scsStep is one request of an scs scenario: after a pause, /put stores a
// value in the session and /get reads it back.
type scsStep struct {
	pause time.Duration
	path  string
}

// TestSCSIdleTimeout and TestSCSLifetime run scs's own TestIdleTimeout and
// TestLifetime end to end over HTTP against the store, on the real clock.
// Which requests must find the session depends on when each request ran, so
// runSCSScenario judges each request by what the clock allows.
func TestSCSIdleTimeout(t *testing.T) {
	t.Parallel()
	steps := []scsStep{{0, "/put"}, {100 * time.Millisecond, "/get"}, {150 * time.Millisecond, "/get"}, {200 * time.Millisecond, "/get"}}
	runSCSScenario(t, 200*time.Millisecond, time.Second, steps)
}

func TestSCSLifetime(t *testing.T) {
	t.Parallel()
	steps := []scsStep{{0, "/put"}, {0, "/get"}, {time.Second, "/get"}}
	runSCSScenario(t, 0, 500*time.Millisecond, steps)
}

// runSCSScenario runs steps through an scs session manager with idle and
// lifetime over the DynamoStore and over a CachedStore in front of it. A
// request that ended before the earliest time the session could expire must
// find it; one that began after the latest time it could expire must not;
// between those, either is right. A run is repeated, on a new session, until
// one saw a request that had to find the session and one that had to miss
// it, so that a slow machine makes the test take longer, never fail.
func runSCSScenario(t *testing.T, idle, lifetime time.Duration, steps []scsStep) {
	s := newStore(t, nil)
	for name, store := range map[string]scs.Store{"DynamoStore": s, "CachedStore": NewCached(s)} {
		sm := scs.New()
		sm.Store, sm.IdleTimeout, sm.Lifetime = store, idle, lifetime
		mux := http.NewServeMux()
		mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) { sm.Put(r.Context(), "foo", "bar") })
		mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, sm.GetString(r.Context(), "foo")) })
		srv := httptest.NewServer(sm.LoadAndSave(mux))
		defer srv.Close()

		hang := time.Now().Add(hangTimeout)
		for runs := 1; ; runs++ {
			if time.Now().After(hang) {
				t.Fatalf("%s: no run in %v saw both a request that had to find the session and one that had to miss it", name, hangTimeout)
			}
			mustFind, mustMiss := runSCSSteps(t, name, srv, idle, lifetime, steps)
			if mustFind && mustMiss {
				t.Logf("%s: %d runs", name, runs)
				break
			}
		}
	}
}

// runSCSSteps runs steps once on a new session and reports whether a
// request had to find the session and one had to miss it.
func runSCSSteps(t *testing.T, name string, srv *httptest.Server, idle, lifetime time.Duration, steps []scsStep) (mustFind, mustMiss bool) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Transport: srv.Client().Transport}
	// The session expires at some instant in [lo, hi): what the test knows
	// of when scs computed it.
	var lo, hi, deadlineLo, deadlineHi time.Time
	present := false
	for i, step := range steps {
		time.Sleep(step.pause) // the scenario's pause between requests
		start := time.Now()
		resp, err := client.Get(srv.URL + step.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		end := time.Now()
		found := string(body) == "bar"
		if step.path == "/put" {
			present = true
			deadlineLo, deadlineHi = start.Add(lifetime), end.Add(lifetime)
			lo, hi = deadlineLo, deadlineHi
			if idle > 0 {
				lo, hi = minTime(lo, start.Add(idle)), minTime(hi, end.Add(idle))
			}
			continue
		}
		switch {
		case present && end.Before(lo):
			mustFind = true
			if !found {
				t.Fatalf("%s, step %d: session missing %v before the earliest time it could expire", name, i, lo.Sub(end))
			}
		case !present || !start.Before(hi):
			mustMiss = mustMiss || present
			if found {
				t.Fatalf("%s, step %d: session found %v after the latest time it could expire", name, i, start.Sub(hi))
			}
		}
		present = present && found
		if present && idle > 0 {
			// scs commits again on every request, pushing the expiry on.
			lo, hi = minTime(deadlineLo, start.Add(idle)), minTime(deadlineHi, end.Add(idle))
		}
	}
	return mustFind, mustMiss
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
