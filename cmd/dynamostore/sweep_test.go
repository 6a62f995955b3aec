package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynamostore/dynamostore"
)

// fillSweepTable puts, under KeyPrefix "app:", expired and live sessions,
// and under "other:" others expired sessions that are not the store's.
func fillSweepTable(t *testing.T, name string, expired, live, others int) {
	t.Helper()
	app := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name; o.KeyPrefix = "app:" })
	other := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name; o.KeyPrefix = "other:" })
	for i := range expired {
		if err := app.Commit(fmt.Sprintf("old-%d", i), []byte("x"), time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range live {
		if err := app.Commit(fmt.Sprintf("live-%d", i), []byte("x"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range others {
		if err := other.Commit(fmt.Sprintf("old-%d", i), []byte("x"), time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

// scanShape is a sweep's Scan request as JSON, without what changes from
// run to run: the page's start and the time in the expired rule's values.
func scanShape(t *testing.T, body map[string]any) string {
	t.Helper()
	body = clone(body)
	delete(body, "ExclusiveStartKey")
	values, _ := body["ExpressionAttributeValues"].(map[string]any)
	if values[":s"] == nil || values[":ms"] == nil {
		t.Fatalf("got Scan %v: expected the expired rule's time values", body)
	}
	delete(values, ":s")
	delete(values, ":ms")
	b, _ := json.Marshal(body)
	return string(b)
}

// TestDryRunIsTheRealRun: on one table, through a proxy that records every
// request, the dry run sends the real run's Scans (segments, filter,
// projection, the read cap's consumed-capacity request) and no DeleteItem,
// prints the same summary with "would delete" for "deleted", and counts
// what the real run then deletes.
func TestDryRunIsTheRealRun(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	fillSweepTable(t, name, 12, 5, 2)
	p := newProxy(t)
	args := []string{"delete-expired", "--table", name, "--key-prefix", "app:", "--segments", "3", "--read-rate", "1000", "--grace", "0s"}

	code, dry, errOut := proxyCmd(context.Background(), p, append(args, "--dry-run")...)
	if code != 0 {
		t.Fatalf("got %d, %q, %q: expected a dry run", code, dry, errOut)
	}
	dryScans := p.requests("Scan")
	if n := len(p.requests("DeleteItem")); n != 0 {
		t.Fatalf("got %d DeleteItem requests: expected the dry run to send none", n)
	}
	code, real, errOut := proxyCmd(context.Background(), p, args...)
	if code != 0 {
		t.Fatalf("got %d, %q, %q: expected a real run", code, real, errOut)
	}
	realScans := p.requests("Scan")[len(dryScans):]
	if n := len(p.requests("DeleteItem")); n != 12 {
		t.Fatalf("got %d DeleteItem requests: expected the real run to delete the 12 expired sessions", n)
	}

	// The same summary, but for the verb, and the same count.
	const want = "12 expired sessions of 19 items scanned in "
	dryCount, _ := strings.CutPrefix(dry, "would delete ")
	realCount, _ := strings.CutPrefix(real, "deleted ")
	if !strings.HasPrefix(dryCount, want) || !strings.HasPrefix(realCount, want) ||
		!regexp.MustCompile(`^would delete 12 expired sessions of 19 items scanned in \S+ \(\d+ per second\), each expired at least 0s ago \(--grace\)\n$`).MatchString(dry) {
		t.Fatalf("got dry run %q and real run %q: expected both to begin %q after their verb", dry, real, want)
	}

	// The same Scans: three segments, each with the read cap's request for
	// consumed capacity and the expired rule's filter.
	var dryShapes, realShapes []string
	segments := map[string]bool{}
	for _, s := range dryScans {
		dryShapes = append(dryShapes, scanShape(t, s))
		segments[fmt.Sprint(s["Segment"], "/", s["TotalSegments"])] = true
		if s["ReturnConsumedCapacity"] != "TOTAL" || s["FilterExpression"] == nil {
			t.Fatalf("got dry run Scan %v: expected the consumed capacity asked for and a filter", s)
		}
	}
	for _, s := range realScans {
		realShapes = append(realShapes, scanShape(t, s))
	}
	slices.Sort(dryShapes)
	slices.Sort(realShapes)
	if !slices.Equal(dryShapes, realShapes) {
		t.Fatalf("dry run scanned with\n%v\nexpected the real run's\n%v", dryShapes, realShapes)
	}
	if len(segments) != 3 || !segments["0/3"] || !segments["1/3"] || !segments["2/3"] {
		t.Fatalf("got segments %v: expected 0, 1 and 2 of 3", segments)
	}

	// Nothing left to delete: both say so alike.
	code, dry, _ = proxyCmd(context.Background(), p, append(args, "--dry-run")...)
	if code != 0 || !strings.HasPrefix(dry, "would delete 0 expired sessions of 7 items scanned in ") {
		t.Fatalf("got %d, %q: expected nothing more to delete", code, dry)
	}
}

// TestDryRunReadRateAndSegments: the dry run waits on the read cap, as the
// real run does, for the capacity each page consumed. A proxy lets the
// Scans through once all of --segments 3 have arrived and says each page
// consumed 1000 read units; at --read-rate 0.001 the wait for the second
// batch of them would outlast --timeout, which the limiter refuses at once:
// each segment sends one Scan, and no more. Without --read-rate the same
// answers end in a full sweep.
func TestDryRunReadRateAndSegments(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	fillSweepTable(t, name, 12, 5, 2)
	for _, dryRun := range []bool{true, false} {
		p := newProxy(t)
		var mu sync.Mutex
		arrived, all := 0, make(chan struct{})
		p.hold = func(ctx context.Context, op string, body map[string]any) bool {
			if op != "Scan" {
				return true
			}
			mu.Lock()
			if arrived++; arrived == 3 {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
				return true
			case <-ctx.Done():
				return false
			case <-time.After(2 * time.Minute): // only a hang reaches it
				t.Errorf("waited 2m for 3 Scan segments; %d came", arrived)
				return false
			}
		}
		p.response = func(op string, body map[string]any) {
			if op == "Scan" {
				body["ConsumedCapacity"] = map[string]any{"TableName": name, "CapacityUnits": 1000}
			}
		}
		args := []string{"delete-expired", "--table", name, "--key-prefix", "app:", "--segments", "3", "--read-rate", "0.001", "--timeout", "1h"}
		if dryRun {
			args = append(args, "--dry-run")
		}
		code, out, errOut := proxyCmd(context.Background(), p, args...)
		verb := map[bool]string{true: "would delete", false: "deleted"}[dryRun]
		if code != 1 || !regexp.MustCompile(`^stopped early: `+verb+` 0 expired sessions of \d+ items scanned`).MatchString(out) ||
			!strings.Contains(errOut, "at --read-rate 0.001 the next page would wait past --timeout 1h") || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("dry run %v: got %d, %q, %q: expected the read cap to stop the sweep after the first pages", dryRun, code, out, errOut)
		}
		segments := map[string]bool{}
		for _, s := range p.requests("Scan") {
			segments[fmt.Sprint(s["Segment"], "/", s["TotalSegments"])] = true
			if s["ReturnConsumedCapacity"] != "TOTAL" {
				t.Fatalf("got Scan %v: expected it to ask for the capacity the cap counts", s)
			}
		}
		if n := len(p.requests("Scan")); n != 3 || len(segments) != 3 || !segments["0/3"] || !segments["1/3"] || !segments["2/3"] {
			t.Fatalf("dry run %v: got %d Scans, segments %v: expected one Scan of each of 3 segments", dryRun, n, segments)
		}
	}
	// The same answers without a cap: the dry run sweeps the table.
	p := newProxy(t)
	p.response = func(op string, body map[string]any) {
		if op == "Scan" {
			body["ConsumedCapacity"] = map[string]any{"TableName": name, "CapacityUnits": 1000}
		}
	}
	code, out, errOut := proxyCmd(context.Background(), p, "delete-expired", "--table", name, "--key-prefix", "app:", "--segments", "3", "--timeout", "1h", "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "would delete 12 expired sessions of 19 items scanned") {
		t.Fatalf("got %d, %q, %q: expected the uncapped dry run to count all 12", code, out, errOut)
	}
}

// TestReadRateTooSlow: a --read-rate at which a Scan of the table, by the
// size DescribeTable reports (10 GB through a proxy), would take longer
// than a day is refused as a usage error, with the estimate, before any
// Scan; --force runs it, and a rate that fits is accepted.
func TestReadRateTooSlow(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	p := newProxy(t)
	p.response = func(op string, body map[string]any) {
		if op == "DescribeTable" {
			body["Table"].(map[string]any)["TableSizeBytes"] = 10 << 30
		}
	}
	code, out, errOut := proxyCmd(context.Background(), p, "delete-expired", "--table", name, "--read-rate", "1")
	want := fmt.Sprintf("dynamostore delete-expired: --read-rate 1: a Scan of table %s (about 10.0 GB, 1310720 read units) would take about 15.2 days at that rate; pass a higher --read-rate, or --force to run it anyway\n", name)
	if code != 2 || out != "" || errOut != want {
		t.Fatalf("got %d, %q, %q: expected exit 2 and %q", code, out, errOut, want)
	}
	// Estimates beyond what a time.Duration holds (about 292 years).
	for rate, estimate := range map[string]string{"0.0001": "about 415.6 years", "1e-10": "more than 1000 years", "1e-300": "more than 1000 years"} {
		code, out, errOut := proxyCmd(context.Background(), p, "delete-expired", "--table", name, "--read-rate", rate)
		want := fmt.Sprintf("dynamostore delete-expired: --read-rate %s: a Scan of table %s (about 10.0 GB, 1310720 read units) would take %s at that rate; ", rate, name, estimate)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, want) {
			t.Fatalf("--read-rate %s: got %d, %q, %q: expected exit 2 and %q", rate, code, out, errOut, want)
		}
	}
	if n := len(p.requests("Scan")); n != 0 {
		t.Fatalf("got %d Scans: expected none", n)
	}
	for _, args := range [][]string{{"--read-rate", "1", "--force"}, {"--read-rate", "1", "--force", "--dry-run"}, {"--read-rate", "100"}} {
		if code, out, errOut := proxyCmd(context.Background(), p, append([]string{"delete-expired", "--table", name}, args...)...); code != 0 {
			t.Fatalf("%v: got %d, %q, %q: expected the sweep to run", args, code, out, errOut)
		}
	}
}

// stallSecondPage makes every Scan read pages of 5 items and holds the
// second page's request until the client gives up; held receives once it
// is held.
func stallSecondPage(p *ddbProxy) (held chan struct{}) {
	held = make(chan struct{}, 1)
	p.request = func(op string, body map[string]any) {
		if op == "Scan" {
			body["Limit"] = 5
		}
	}
	p.hold = func(ctx context.Context, op string, body map[string]any) bool {
		if op != "Scan" || body["ExclusiveStartKey"] == nil {
			return true
		}
		held <- struct{}{}
		select {
		case <-ctx.Done():
		case <-p.stop:
		}
		return false
	}
	return held
}

// TestStoppedEarlyCounts: stats and a dry run interrupted after a first
// page of 5 items print the counts of those 5, then why they stopped.
func TestStoppedEarlyCounts(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	fillSweepTable(t, name, 10, 0, 0)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"stats", "--key-prefix", "app:"}, []string{"stopped early: the counts of the 5 items scanned before it stopped\nitems scanned: 5\n"}},
		{[]string{"delete-expired", "--key-prefix", "app:", "--dry-run"}, []string{"stopped early: would delete 5 expired sessions of 5 items scanned in "}},
	} {
		p := newProxy(t)
		held := stallSecondPage(p)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var code int
		var out, errOut string
		go func() {
			defer close(done)
			code, out, errOut = proxyCmd(ctx, p, append(c.args, "--table", name)...)
		}()
		select {
		case <-held:
		case <-time.After(2 * time.Minute): // only a hang reaches it
			t.Fatalf("%v: waited 2m for the second page", c.args)
		}
		cancel()
		<-done
		if c.args[0] == "stats" && !strings.Contains(out, "expired sessions: ") {
			t.Fatalf("got %q: expected the partial counts", out)
		}
		for _, want := range c.want {
			if code != 1 || !strings.HasPrefix(out, want) || !strings.Contains(errOut, "dynamostore "+c.args[0]+": interrupted: ") {
				t.Fatalf("%v: got %d, %q, %q: expected %q and the interruption", c.args, code, out, errOut, want)
			}
		}
	}
}

// TestStoppedEarlyInFlight: a revoke and a delete-expired stopped while
// their writes had reached DynamoDB, but not their answers, the client,
// count them apart: done for certain, and in flight, which may have been
// applied (here all were).
func TestStoppedEarlyInFlight(t *testing.T) {
	t.Parallel()
	swept := tableName(t)
	createWithoutTTL(t, swept)
	fillSweepTable(t, swept, 3, 0, 0)
	owned := tableName(t)
	ownedTable(t, owned)
	for _, c := range []struct {
		args      []string
		op        string
		want      *regexp.Regexp
		remaining []string // a command, and what it prints after
	}{
		{[]string{"revoke", "--table", owned, "--key-prefix", "app:", "--owner", "u6"}, "PutItem",
			regexp.MustCompile(`^stopped early: revoked at least 0 sessions: 0 live, 0 expired; 3 more were in flight and may have been applied\n$`),
			[]string{"sessions", "--table", owned, "--key-prefix", "app:", "--owner", "u6", "live sessions: 0\nexpired sessions: 0\n"}},
		{[]string{"delete-expired", "--table", swept, "--key-prefix", "app:", "--grace", "0s"}, "DeleteItem",
			regexp.MustCompile(`^stopped early: deleted at least 0 expired sessions of 3 items scanned in \S+ \(0 per second\), each expired at least 0s ago \(--grace\); 3 more deletes were in flight and may have been applied\n$`),
			[]string{"stats", "--table", swept, "--key-prefix", "app:", "items scanned: 0\n"}},
	} {
		p := newProxy(t)
		held := make(chan struct{}, 3)
		p.holdAnswer = func(ctx context.Context, op string, body map[string]any) bool {
			if op != c.op {
				return true
			}
			held <- struct{}{}
			select {
			case <-ctx.Done():
			case <-p.stop:
			}
			return false
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var code int
		var out, errOut string
		go func() {
			defer close(done)
			code, out, errOut = proxyCmd(ctx, p, c.args...)
		}()
		hang := time.After(2 * time.Minute) // only a hang reaches it
		for range 3 {
			select {
			case <-held:
			case <-hang:
				t.Fatalf("%v: waited 2m for 3 answers of %s", c.args, c.op)
			}
		}
		cancel()
		<-done
		if code != 1 || !c.want.MatchString(out) || !strings.Contains(errOut, "dynamostore "+c.args[0]+": interrupted: ") {
			t.Fatalf("%v: got %d, %q, %q: expected %v and the interruption", c.args, code, out, errOut, c.want)
		}
		last := len(c.remaining) - 1
		if code, out, errOut := dynamostoreCmd(t, c.remaining[:last]...); code != 0 || !strings.HasPrefix(out, c.remaining[last]) {
			t.Fatalf("%v: got %d, %q, %q: expected %q: the writes in flight applied", c.remaining[:last], code, out, errOut, c.remaining[last])
		}
	}
}
