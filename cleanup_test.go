package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/dynamostore/dynamostore/internal/ddblocal"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	s := newDynamoStore(client, 0, clockAhead, append(fns, func(o *Options) { o.KeyPrefix = "mine:" }))
	other := newDynamoStore(client, 0, clockAhead, append(fns, func(o *Options) { o.KeyPrefix = "other:" }))
	past, future := expiredAt(), liveAt()
	const expiredCount = 120
	for i := range expiredCount {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), past); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		s      *DynamoStore
		token  string
		expiry time.Time
	}{{s, "live", future}, {other, "old", past}, {other, "live", future}} {
		if err := c.s.Commit(c.token, []byte("x"), c.expiry); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != expiredCount {
		t.Fatalf("got %d deleted: expected %d", n, expiredCount)
	}
	if rawItem(t, s, "mine:old-7") != nil {
		t.Fatal("expected the expired session deleted")
	}
	if rawItem(t, s, "mine:live") == nil || rawItem(t, s, "other:live") == nil {
		t.Fatal("expected live sessions kept")
	}
	if rawItem(t, s, "other:old") == nil {
		t.Fatal("expected another prefix's expired session untouched")
	}
	if n, err := s.DeleteExpired(context.Background()); n != 0 || err != nil {
		t.Fatalf("second sweep got %d, %v: expected 0, nil", n, err)
	}
}

func TestDeleteExpiredKeepsRecommitted(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStoreWith(t, spy, clockAhead)
	if err := s.Commit("revived", []byte("old"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("dead", []byte("old"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	spy.beforeDelete = func(ctx context.Context, in *dynamodb.DeleteItemInput) error {
		var err error
		if in.Key["session_key"].(*types.AttributeValueMemberS).Value == "revived" {
			// The user comes back between the sweeper's Scan and its delete.
			once.Do(func() { err = s.CommitCtx(ctx, "revived", []byte("new"), liveAt()) })
		}
		return err
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("got %d deleted: expected 1", n)
	}
	b, found, err := s.Find("revived")
	if err != nil || !found || string(b) != "new" {
		t.Fatalf("got %q, %v, %v: expected the re-committed session to survive", b, found, err)
	}
	if rawItem(t, s, "dead") != nil {
		t.Fatal("expected the expired session deleted")
	}
}

// TestSweepClockSkew runs the sweeper on one store while another, whose clock
// differs by up to a minute, serves the same sessions: the sweeper must not
// delete any session the other still finds. Clocks are fixed, two hours
// ahead, so neither the wall clock nor DynamoDB Local's own TTL moves them.
func TestSweepClockSkew(t *testing.T) {
	t.Parallel()
	base := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		name          string
		sweeper, peer time.Duration // offsets from base
		grace         time.Duration
		wantUnsafe    bool // without enough grace the sweep must be caught
	}{
		{"sweeper a minute ahead", time.Minute, 0, 0, false},
		{"sweeper 30s ahead, peer 30s behind", 30 * time.Second, -30 * time.Second, 0, false},
		{"sweeper a minute behind", -time.Minute, 0, 0, false},
		{"sweeper 59.9s ahead, mid-second", time.Minute - 100*time.Millisecond, 0, 0, false},
		// The control: no grace and a fast clock deletes live sessions,
		// so this test can tell.
		{"no grace", time.Minute, 0, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := func(d time.Duration) hooks {
				return hooks{now: func() time.Time { return base.Add(d) }}
			}
			fns := newTable(t)
			client := newClient(t)
			sweeper := newDynamoStore(client, 0, clock(tc.sweeper), append(fns, func(o *Options) {
				if tc.grace != 0 {
					o.SweepGrace = tc.grace
				}
			}))
			peer := newDynamoStore(client, 0, clock(tc.peer), fns)
			writer := NewWithCleanupInterval(client, 0, fns...) // the real clock: all are in its future

			// A session every 2.3 s from three minutes before base to
			// three after, so expiries fall at every part of a second.
			expiries := map[string]time.Time{}
			for off := -180 * time.Second; off <= 180*time.Second; off += 2300 * time.Millisecond {
				token := fmt.Sprintf("s%d", off.Milliseconds())
				expiries[token] = base.Add(off)
				if err := writer.Commit(token, []byte(token), expiries[token]); err != nil {
					t.Fatal(err)
				}
			}
			deleted, err := sweeper.DeleteExpired(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if deleted == 0 {
				t.Fatal("expected the sweep to delete the sessions long expired for both")
			}
			var lost []string
			for token, exp := range expiries {
				if !exp.After(base.Add(tc.peer)) {
					continue // expired for the peer: it may go
				}
				if _, found, err := peer.Find(token); err != nil {
					t.Fatal(err)
				} else if !found {
					lost = append(lost, token)
				}
			}
			if tc.wantUnsafe {
				if len(lost) == 0 {
					t.Fatal("expected a sweep without grace to delete sessions the peer still serves")
				}
				return
			}
			if len(lost) > 0 {
				t.Fatalf("sweeper deleted %d sessions the peer still serves: %v", len(lost), lost)
			}
		})
	}
}

func TestDeleteExpiredWorkers(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStoreWith(t, spy, clockAhead)
	for i := range 100 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	// The first delete waits for a second one to start: the sweep must run
	// deletes concurrently.
	second := make(chan struct{})
	var calls atomic.Int64
	spy.beforeDelete = func(ctx context.Context, _ *dynamodb.DeleteItemInput) error {
		switch calls.Add(1) {
		case 1:
			select {
			case <-second:
			case <-time.After(hangTimeout):
				return errors.New("no second delete ran concurrently")
			}
		case 2:
			close(second)
		}
		return nil
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil || n != 100 {
		t.Fatalf("got %d, %v: expected 100 deleted", n, err)
	}
	if spy.max > sweepWorkers {
		t.Fatalf("got %d deletes in flight: expected at most %d", spy.max, sweepWorkers)
	}
	// The sweep's Scan returns only the key and the revocation marker.
	in := spy.lastScan
	if got := aws.ToString(in.ProjectionExpression); got != "#k, #r" || in.ExpressionAttributeNames["#k"] != "session_key" || in.ExpressionAttributeNames["#r"] != sessionitem.RevokedAttribute {
		t.Fatalf("got projection %q with %v: expected key and revocation marker only", got, in.ExpressionAttributeNames)
	}
}

func TestDeleteExpiredSegments(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStoreWith(t, spy, clockAhead, func(o *Options) { o.SweepSegments = 4 })
	for i := range 100 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil || n != 100 {
		t.Fatalf("got %d, %v: expected 100 deleted", n, err)
	}
	if len(spy.segments) != 4 {
		t.Fatalf("got segments %v: expected 0 to 3", spy.segments)
	}
}

func TestDeleteExpiredReadRate(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	// 20 units a second; 40 items of 40 KB, about 200 units to read.
	const rate = 20
	s := newStoreWith(t, spy, clockAhead, func(o *Options) { o.SweepReadRate = rate })
	data := bytes.Repeat([]byte{'z'}, 40<<10)
	for i := range 40 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), data, expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	n, err := s.DeleteExpired(context.Background())
	if err != nil || n != 40 {
		t.Fatalf("got %d, %v: expected 40 deleted", n, err)
	}
	if aws.ToString((*string)(&spy.lastScan.ReturnConsumedCapacity)) != "TOTAL" || spy.readUnits == 0 {
		t.Fatalf("got %v units reported: expected the Scan to ask for consumed capacity", spy.readUnits)
	}
	// The first page's units up to sessionitem.MaxPageReadUnits pass at once; the rest
	// wait at the rate.
	if minWait := time.Duration((spy.readUnits - sessionitem.MaxPageReadUnits) / rate * float64(time.Second)); time.Since(start) < minWait {
		t.Fatalf("swept %v units in %v: expected at least %v at %d units a second", spy.readUnits, time.Since(start), minWait, rate)
	}
	t.Logf("%v read units in %v", spy.readUnits, time.Since(start))
}

func TestDeleteExpiredThrottled(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStoreWith(t, spy, clockAhead)
	for i := range 5 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	// The store retries nothing over the client's retryer: a delete still
	// throttled ends the sweep, and the next sweep goes on.
	var throttled atomic.Int64
	spy.beforeDelete = func(context.Context, *dynamodb.DeleteItemInput) error {
		if throttled.Add(1) == 1 {
			return &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
		}
		return nil
	}
	n, err := s.DeleteExpired(context.Background())
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) || n > 4 {
		t.Fatalf("got %d, %v: expected the throttle returned, after at most 4 deleted", n, err)
	}
	if got := throttled.Load(); got > 5 {
		t.Fatalf("got %d deletes: expected no retry beyond the client's", got)
	}
	if _, err := s.DeleteExpired(context.Background()); err != nil {
		t.Fatalf("got %v: expected the second sweep to finish", err)
	}
	for i := range 5 {
		if item := rawItem(t, s, fmt.Sprintf("old-%d", i)); item != nil {
			t.Fatalf("old-%d: got %v: expected it deleted by the second sweep", i, item)
		}
	}

	// Any other error ends the sweep with the operation, table and cause.
	spy.mu.Lock()
	spy.beforeDelete = func(context.Context, *dynamodb.DeleteItemInput) error {
		return &types.InternalServerError{Message: aws.String("boom")}
	}
	spy.mu.Unlock()
	if err := s.Commit("old-x", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeleteExpired(context.Background())
	var ise *types.InternalServerError
	if !errors.As(err, &ise) || !strings.Contains(err.Error(), "dynamostore: delete expired in table "+strconv.Quote(s.tableName)) {
		t.Fatalf("got %v: expected the cause wrapped with operation and table", err)
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	gone := make(chan struct{})
	var once sync.Once
	spy.afterDelete = func(in *dynamodb.DeleteItemInput, err error) {
		if err == nil && in.Key["session_key"].(*types.AttributeValueMemberS).Value == "old" {
			once.Do(func() { close(gone) })
		}
	}
	fns := newTable(t)
	s := newDynamoStore(spy, 50*time.Millisecond, clockAhead, fns)
	defer s.StopCleanup()
	if err := s.Commit("old", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("live", []byte("x"), liveAt()); err != nil {
		t.Fatal(err)
	}
	waitChan(t, gone, "the sweeper to delete the expired session")
	if rawItem(t, s, "old") != nil {
		t.Fatal("expected the expired session gone from the table")
	}
	if rawItem(t, s, "live") == nil {
		t.Fatal("expected the live session kept")
	}
}

func TestCleanupLogsErrors(t *testing.T) {
	t.Parallel()
	// With the lease, the lease's PutItem meets the missing table first.
	for lease, want := range map[bool]string{true: "sweep skipped", false: "sweep failed"} {
		var logs syncBuffer
		s := NewWithCleanupInterval(newClient(t), 20*time.Millisecond, withLogger(&logs), func(o *Options) {
			o.TableName = "no-such-table"
			o.SweepLease = lease
		})
		logs.waitFor(t, want)
		s.StopCleanup()
		if !strings.Contains(logs.String(), "no-such-table") || !strings.Contains(logs.String(), "does not exist") {
			t.Fatalf("got log %q: expected the table and the cause", logs.String())
		}
	}
}

func TestStopCleanup(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(newClient(t), time.Hour)
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); s.StopCleanup() }()
	}
	wg.Wait()
	select {
	case <-s.sweeperDone:
	default:
		t.Fatal("expected the sweeper to have exited when StopCleanup returned")
	}
	s.StopCleanup() // and again, later
}

func TestStopNilCleanup(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(newClient(t), 0)
	s.StopCleanup()
	if s.sweeperDone != nil {
		t.Fatal("expected no sweeper with interval 0")
	}
	s = New(newClient(t), func(o *Options) { o.CleanupInterval = 0 })
	s.StopCleanup()
	if s.sweeperDone != nil {
		t.Fatal("expected an option to disable the sweeper")
	}
}

func TestStopCleanupCancelsSweep(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	var once sync.Once
	spy := &spyClient{Client: newClient(t)}
	spy.beforeDelete = func(ctx context.Context, in *dynamodb.DeleteItemInput) error {
		if in.Key["session_key"].(*types.AttributeValueMemberS).Value == sessionitem.LeaseToken {
			return nil // let StopCleanup release the lease
		}
		once.Do(func() { close(started) })
		<-ctx.Done() // hold the sweep until StopCleanup cancels it
		return ctx.Err()
	}
	fns := newTable(t)
	s := newDynamoStore(spy, 10*time.Millisecond, clockAhead, fns)
	if err := s.Commit("old", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	waitChan(t, started, "a sweep to start")
	s.StopCleanup()
	if rawItem(t, s, "old") == nil {
		t.Fatal("expected the cancelled sweep to delete nothing")
	}
}

// ttlSpy is the SDK's client, which has DescribeTimeToLive, counting the
// sweeper's Scans, lease writes and TTL checks. deny makes DescribeTimeToLive
// fail as IAM refuses it.
type ttlSpy struct {
	*dynamodb.Client
	deny   bool
	w      watched
	scans  int
	leases int
	checks int
}

func (c *ttlSpy) count(n *int) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	*n++
	c.w.changed()
}

// waitCounts returns the counts once cond holds for them.
func (c *ttlSpy) waitCounts(t *testing.T, what string, cond func(scans, leases, checks int) bool) (scans, leases, checks int) {
	t.Helper()
	if !c.w.wait(func() bool { scans, leases, checks = c.scans, c.leases, c.checks; return cond(scans, leases, checks) }) {
		t.Fatalf("waited %v for %s: got %d scans, %d lease writes, %d TTL checks", hangTimeout, what, scans, leases, checks)
	}
	return scans, leases, checks
}

func (c *ttlSpy) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.count(&c.scans)
	return c.Client.Scan(ctx, in, optFns...)
}

func (c *ttlSpy) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, ok := in.Item[leaseUntilAttr]; ok {
		c.count(&c.leases)
	}
	return c.Client.PutItem(ctx, in, optFns...)
}

func (c *ttlSpy) DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error) {
	defer c.count(&c.checks)
	if c.deny {
		return nil, &smithy.GenericAPIError{Code: "AccessDeniedException",
			Message: "User: arn:aws:sts::123456789012:assumed-role/app is not authorized to perform: dynamodb:DescribeTimeToLive"}
	}
	return c.Client.DescribeTimeToLive(ctx, in, optFns...)
}

// ttlRecheck is clockAhead with the TTL status asked for every d rather
// than every hour.
func ttlRecheck(d time.Duration) hooks {
	return hooks{now: clockAhead.now, ttlRecheck: d}
}

// TestSweeperStandsDownWithTTL: where the table's TTL deletes expired items
// (DynamoDB Local's tables from CreateTable) the background sweeper neither
// scans nor takes the lease, over many intervals and several checks, and
// resumes once TTL is turned off; where TTL is off (dynalite) it sweeps.
func TestSweeperStandsDownWithTTL(t *testing.T) {
	t.Parallel()
	const interval = 20 * time.Millisecond
	fns := newTable(t)
	spy := &ttlSpy{Client: newClient(t)}
	var logs syncBuffer
	s := newDynamoStore(spy, interval, ttlRecheck(5*interval), append(fns, withLogger(&logs)))
	defer s.StopCleanup()

	if ddblocal.IsDynalite() {
		// dynalite reports TTL DISABLED: the sweeper sweeps as ever.
		spy.waitCounts(t, "two sweeps", func(scans, _, _ int) bool { return scans >= 2 })
		if strings.Contains(logs.String(), "stands down") {
			t.Fatalf("got log %q: expected no stand-down where TTL is off", logs.String())
		}
		return
	}
	// Four checks are at least three rechecks apart: 15 intervals.
	scans, leases, _ := spy.waitCounts(t, "four TTL checks", func(_, _, checks int) bool { return checks >= 4 })
	if scans != 0 || leases != 0 {
		t.Fatalf("got %d scans and %d lease writes: expected none while TTL deletes", scans, leases)
	}
	if n := strings.Count(logs.String(), "level=INFO msg=\"dynamostore: the sweeper stands down"); n != 1 {
		t.Fatalf("got log %q: expected one Info line saying the sweeper stands down", logs.String())
	}

	// DeleteExpired called directly sweeps whatever the TTL status.
	if err := s.Commit("old", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected DeleteExpired to delete the expired session", n, err)
	}

	// TTL off: at its next check the sweeper resumes, and says so.
	if _, err := spy.Client.UpdateTimeToLive(context.Background(), &dynamodb.UpdateTimeToLiveInput{
		TableName:               s.table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("expires"), Enabled: aws.Bool(false)},
	}); err != nil {
		t.Fatal(err)
	}
	before, _, _ := spy.waitCounts(t, "", func(int, int, int) bool { return true })
	spy.waitCounts(t, "a sweep after TTL was turned off", func(scans, leases, _ int) bool { return scans > before && leases > 0 })
	logs.waitFor(t, "level=INFO msg=\"dynamostore: the sweeper resumes")
}

// TestSweepWithTTL: with SweepWithTTL the sweeper sweeps a TTL table and
// never asks for its TTL status.
func TestSweepWithTTL(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	spy := &ttlSpy{Client: newClient(t)}
	s := newDynamoStore(spy, 20*time.Millisecond, clockAhead, append(fns, func(o *Options) { o.SweepWithTTL = true }))
	defer s.StopCleanup()
	if _, _, checks := spy.waitCounts(t, "two sweeps", func(scans, _, _ int) bool { return scans >= 2 }); checks != 0 {
		t.Fatalf("got %d TTL checks: expected none with SweepWithTTL", checks)
	}
}

// TestSweeperTTLDenied: where DescribeTimeToLive is refused, the sweeper
// sweeps and warns once, however often it asks.
func TestSweeperTTLDenied(t *testing.T) {
	t.Parallel()
	const interval = 20 * time.Millisecond
	fns := newTable(t)
	spy := &ttlSpy{Client: newClient(t), deny: true}
	var logs syncBuffer
	s := newDynamoStore(spy, interval, ttlRecheck(interval), append(fns, withLogger(&logs)))
	defer s.StopCleanup()
	spy.waitCounts(t, "three checks and two sweeps", func(scans, _, checks int) bool { return checks >= 3 && scans >= 2 })
	log := logs.String()
	// Other warnings may come: a 20 ms sweep on a busy machine can stop for
	// want of a lease renewal.
	if n := strings.Count(log, "grant dynamodb:DescribeTimeToLive"); n != 1 {
		t.Fatalf("got log %q: expected one warning naming the permission", log)
	}
}

// itemClient has only the methods of Client, as a DAX client's item
// operations are: no DescribeTimeToLive, Query or BatchGetItem.
type itemClient struct{ c *dynamodb.Client }

func (c itemClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return c.c.GetItem(ctx, in, optFns...)
}

func (c itemClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return c.c.PutItem(ctx, in, optFns...)
}

func (c itemClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return c.c.DeleteItem(ctx, in, optFns...)
}

func (c itemClient) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return c.c.Scan(ctx, in, optFns...)
}

// TestItemOperationsClient: a client with only Client's methods, as a DAX
// client is, serves the store, the cache and the sweeper, which cannot ask
// for the TTL status and so sweeps.
func TestItemOperationsClient(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	s := newDynamoStore(itemClient{newClient(t)}, 20*time.Millisecond, clockAhead, fns)
	defer s.StopCleanup()
	c := NewCached(s)
	if err := c.Commit("live", []byte("x"), liveAt()); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit("old", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if b, found, err := c.Find("live"); string(b) != "x" || !found || err != nil {
		t.Fatalf("got %q, %v, %v: expected the live session", b, found, err)
	}
	waitUntil(t, "the sweeper to delete the expired session", func() bool { return rawItem(t, s, "old") == nil })
	if all, err := c.All(); len(all) != 1 || err != nil {
		t.Fatalf("got %v, %v: expected the live session alone", all, err)
	}
	if err := c.Delete("live"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := c.Find("live"); found || err != nil {
		t.Fatalf("got %v, %v: expected the session deleted", found, err)
	}
}

// TestOneRetryPolicy: a throttled delete is tried as often as the client's
// retryer says (the SDK's default: 3 attempts), not that many times again
// by the store on top. The throttle is injected inside a real
// *dynamodb.Client, below its retryer.
func TestOneRetryPolicy(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int32
	throttled := dynamodb.New(newClient(t).Options(), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("throttle", func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
				if awsmiddleware.GetOperationName(ctx) == "DeleteItem" {
					attempts.Add(1)
					return middleware.DeserializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "injected"}
				}
				return next.HandleDeserialize(ctx, in)
			}), middleware.After)
		})
	})
	s := newStoreWith(t, throttled, clockAhead)
	if err := s.Commit("old", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	_, err := s.DeleteExpired(context.Background())
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ProvisionedThroughputExceededException" {
		t.Fatalf("got %v: expected the throttle returned", err)
	}
	if got := attempts.Load(); got != 3 {
		t.Fatalf("got %d attempts: expected the SDK's 3, and no more", got)
	}
}
