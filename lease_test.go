package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// fleetLog records, in order, what each store of a fleet did with the
// sweeper lease and when it swept.
type fleetLog struct {
	watched
	events []fleetEvent
}

type fleetEvent struct {
	store       int
	kind        fleetEventKind
	from, until int64 // a granted lease, in Unix milliseconds of the store's clock
}

type fleetEventKind int

const (
	leaseGranted fleetEventKind = iota // recorded once DynamoDB accepted the lease
	leaseRelease                       // recorded before the release is sent
	sweepBegun                         // a sweep's first Scan
)

func (l *fleetLog) record(e fleetEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	l.changed()
}

func (l *fleetLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

// waitEvents returns the events so far once cond holds for them.
func (l *fleetLog) waitEvents(t *testing.T, what string, cond func([]fleetEvent) bool) []fleetEvent {
	t.Helper()
	var events []fleetEvent
	if !l.wait(func() bool { events = slices.Clone(l.events); return cond(events) }) {
		t.Fatalf("waited %v for %s: got %d events", hangTimeout, what, len(events))
	}
	return events
}

// recordingClient records its store's lease and sweeps in a fleetLog.
type recordingClient struct {
	Client
	id  int
	log *fleetLog
}

func (c recordingClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := c.Client.PutItem(ctx, in, optFns...)
	if until, ok := in.Item[leaseUntilAttr].(*types.AttributeValueMemberN); ok && err == nil {
		from, _ := strconv.ParseInt(in.ExpressionAttributeValues[":now"].(*types.AttributeValueMemberN).Value, 10, 64)
		to, _ := strconv.ParseInt(until.Value, 10, 64)
		c.log.record(fleetEvent{store: c.id, kind: leaseGranted, from: from, until: to})
	}
	return out, err
}

func (c recordingClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if key, ok := in.Key["session_key"].(*types.AttributeValueMemberS); ok && key.Value == sessionitem.LeaseToken {
		c.log.record(fleetEvent{store: c.id, kind: leaseRelease})
	}
	return c.Client.DeleteItem(ctx, in, optFns...)
}

func (c recordingClient) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if in.ProjectionExpression != nil && in.ExclusiveStartKey == nil {
		c.log.record(fleetEvent{store: c.id, kind: sweepBegun})
	}
	return c.Client.Scan(ctx, in, optFns...)
}

func countSweeps(events []fleetEvent) (n int) {
	for _, e := range events {
		if e.kind == sweepBegun {
			n++
		}
	}
	return n
}

// checkLease fails the test unless leases granted to different stores never
// overlap in time, until a store releases its lease, and every store swept
// only under a lease of its own. This holds however slowly the stores run,
// where the time between two sweeps would not: one slow request brings two
// sweeps close together.
func checkLease(t *testing.T, events []fleetEvent) {
	t.Helper()
	grants, sweeps := map[int]int{}, map[int]int{}
	var held []fleetEvent // leases granted and not released
	for _, e := range events {
		switch e.kind {
		case sweepBegun:
			if sweeps[e.store]++; sweeps[e.store] > grants[e.store] {
				t.Fatalf("store %d swept without a lease", e.store)
			}
		case leaseRelease:
			// Released early: another store may take it before it lapses.
			held = slices.DeleteFunc(held, func(g fleetEvent) bool { return g.store == e.store })
		case leaseGranted:
			grants[e.store]++
			for _, g := range held {
				if g.store != e.store && g.from < e.until && e.from < g.until {
					t.Logf("events: %+v", events)
					t.Fatalf("store %d was granted the lease for [%d, %d) ms and store %d for [%d, %d) ms: expected one holder at a time",
						g.store, g.from, g.until, e.store, e.from, e.until)
				}
			}
			held = append(held, e)
		}
	}
}

func TestFleetSweepsOncePerInterval(t *testing.T) {
	t.Parallel()
	const interval = 400 * time.Millisecond
	fns := newTable(t)
	client := newClient(t)
	log := &fleetLog{}
	stores := make([]*DynamoStore, 5)
	for i := range stores {
		stores[i] = NewWithCleanupInterval(recordingClient{client, i, log}, interval, fns...)
		defer stores[i].StopCleanup()
	}
	events := log.waitEvents(t, "8 sweeps", func(ev []fleetEvent) bool { return countSweeps(ev) >= 8 })
	checkLease(t, events)

	// Stop the holder: another store takes the lease and sweeps.
	holder := -1
	for _, e := range events {
		if e.kind == leaseGranted {
			holder = e.store
		}
	}
	stores[holder].StopCleanup()
	stopped := log.len()
	events = log.waitEvents(t, "a sweep by another store", func(ev []fleetEvent) bool { return countSweeps(ev[stopped:]) > 0 })
	for _, e := range events[stopped:] {
		if e.store == holder && e.kind != leaseRelease {
			t.Fatal("the stopped store took the lease or swept")
		}
	}
	checkLease(t, events)

	// The lease item is no session.
	s := stores[(holder+1)%len(stores)]
	if _, found, err := s.Find(sessionitem.LeaseToken); found || err != nil {
		t.Fatalf("got %v, %v: expected the lease not found", found, err)
	}
	if all, err := s.All(); err != nil || len(all) != 0 {
		t.Fatalf("got %v, %v: expected no sessions", all, err)
	}
	if err := s.Commit(sessionitem.LeaseToken, []byte("x"), time.Now().Add(time.Hour)); err == nil {
		t.Fatal("expected Commit to refuse the lease's token")
	}
}

func TestSweepLeaseLapses(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	crashed := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.CleanupInterval = 0 })...)
	crashed.leaseFor = time.Hour // as if its sweeper took the lease and died
	if held, err := crashed.acquireLease(context.Background()); !held || err != nil {
		t.Fatalf("got %v, %v: expected the lease", held, err)
	}
	other := NewWithCleanupInterval(client, 0, fns...)
	other.leaseFor = time.Minute
	if held, err := other.acquireLease(context.Background()); held || err != nil {
		t.Fatalf("got %v, %v: expected the lease held by the other store", held, err)
	}
	other.now = func() time.Time { return time.Now().Add(time.Hour) }
	if held, err := other.acquireLease(context.Background()); !held || err != nil {
		t.Fatalf("got %v, %v: expected the lapsed lease taken over", held, err)
	}
}

// slowSweepClient holds a store's sweep Scan until release is closed or
// the sweep's context ends, and counts the Scans in flight across stores.
// With hangRenewals, each lease write after the first waits until its
// context ends, as a renewal DynamoDB never answers would.
type slowSweepClient struct {
	Client
	inFlight     *atomic.Int32 // sweep Scans in flight, all stores
	overlapped   *atomic.Bool  // two sweep Scans were in flight at once
	release      chan struct{}
	scanning     chan struct{} // closed when this store's Scan is held
	scanOnce     sync.Once
	scanEnded    chan error // why this store's held Scan returned
	hangRenewals bool
	leases       atomic.Int32 // lease writes that succeeded
	refused      atomic.Int32 // lease writes refused: another store holds it
}

func (c *slowSweepClient) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if c.inFlight.Add(1) > 1 {
		c.overlapped.Store(true)
	}
	defer c.inFlight.Add(-1)
	held := false
	c.scanOnce.Do(func() { held = true })
	if held {
		close(c.scanning)
		select {
		case <-c.release:
			c.scanEnded <- nil
		case <-ctx.Done():
			c.scanEnded <- context.Cause(ctx)
			return nil, ctx.Err()
		}
	}
	return c.Client.Scan(ctx, in, optFns...)
}

func (c *slowSweepClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if _, ok := in.Item[leaseUntilAttr]; !ok {
		return c.Client.PutItem(ctx, in, optFns...)
	}
	if c.hangRenewals && c.leases.Load() > 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	out, err := c.Client.PutItem(ctx, in, optFns...)
	var condFailed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		c.leases.Add(1)
	case errors.As(err, &condFailed):
		c.refused.Add(1)
	}
	return out, err
}

// TestSweepLeaseRenewed: a sweep that outlasts CleanupInterval keeps its
// lease by renewing it, so a second store's ticks find the lease held and
// no two Scans overlap; and a store whose renewal hangs stops its sweep
// before the lease lapses, so that the store that takes the lease over
// never scans beside it.
func TestSweepLeaseRenewed(t *testing.T) {
	t.Parallel()
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprintf("hangRenewals=%v", hang), func(t *testing.T) {
			t.Parallel()
			fns := newTable(t)
			var inFlight atomic.Int32
			var overlapped atomic.Bool
			newClient := func(hang bool) *slowSweepClient {
				return &slowSweepClient{Client: newClient(t), inFlight: &inFlight, overlapped: &overlapped,
					release: make(chan struct{}), scanning: make(chan struct{}), scanEnded: make(chan error, 1), hangRenewals: hang}
			}
			var logs syncBuffer
			// The lease lasts minLease (10 s), renewed every 3.3 s: a renewal
			// has 4 s to succeed on a busy machine.
			const interval = 3 * time.Second
			a := newClient(hang)
			first := NewWithCleanupInterval(a, interval, append(fns, withLogger(&logs), func(o *Options) { o.SweepWithTTL = true })...)
			t.Cleanup(first.StopCleanup)
			waitChan(t, a.scanning, "the first store's sweep")
			b := newClient(false)
			second := NewWithCleanupInterval(b, interval, append(fns, func(o *Options) { o.SweepWithTTL = true })...)
			t.Cleanup(second.StopCleanup)
			if !hang {
				// Renewed twice, and refused to the second store, while the
				// first store's Scan is held.
				waitUntil(t, "two renewals and a refused lease", func() bool { return a.leases.Load() >= 3 && b.refused.Load() >= 1 })
				close(a.release)
				if err := waitChan(t, a.scanEnded, "the released Scan"); err != nil {
					t.Fatalf("got %v: expected the held Scan released, not cancelled", err)
				}
			} else {
				// The renewal hangs: the sweep stops before the lease
				// lapses, and the second store sweeps after it.
				waitChan(t, b.scanning, "the second store's sweep")
				if overlapped.Load() {
					t.Fatal("the second store's Scan began while the first store's ran")
				}
				if err := waitChan(t, a.scanEnded, "the stopped Scan"); !errors.Is(err, errLeaseLost) {
					t.Fatalf("got %v: expected the sweep stopped for the lease", err)
				}
				logs.waitFor(t, "sweep stopped")
				close(b.release)
			}
			if overlapped.Load() {
				t.Fatal("two stores' Scans overlapped")
			}
		})
	}
}

// TestLeaseFenced: the sweeper lease's key is no session's key under any
// prefix, so a store with KeyPrefix "app:#" cannot revoke or overwrite the
// lease of the stores with "app:".
func TestLeaseFenced(t *testing.T) {
	t.Parallel()
	fns := newTable(t, quietLog)
	client := newClient(t)
	if err := CheckOptions(func(o *Options) { o.KeyPrefix = "app:#" }); err != nil {
		t.Fatalf("setup: %v", err)
	}
	app := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.KeyPrefix = "app:" })...)
	app.leaseFor = time.Hour
	other := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.KeyPrefix = "app:#" })...)
	if ok, err := app.acquireLease(context.Background()); !ok || err != nil {
		t.Fatalf("setup: lease %v, %v", ok, err)
	}
	before := rawItem(t, app, "app:"+sessionitem.LeaseToken)
	// The other prefix's store deletes its "session" sweeper-lease.
	if err := other.Delete("sweeper-lease"); err != nil {
		t.Fatal(err)
	}
	after := rawItem(t, app, "app:"+sessionitem.LeaseToken)
	renewed, _ := app.acquireLease(context.Background())
	if !reflect.DeepEqual(after, before) || !renewed {
		t.Fatalf("lease before %v; after the \"app:#\" store's Delete(\"sweeper-lease\"): %v; holder renews: %v: expected another prefix's store never to touch the lease", keysOf(before), keysOf(after), renewed)
	}
}

func keysOf(m map[string]types.AttributeValue) []string {
	var ks []string
	for k, v := range m {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			ks = append(ks, k+"="+v.Value)
		case *types.AttributeValueMemberN:
			ks = append(ks, k+"="+v.Value)
		default:
			ks = append(ks, k)
		}
	}
	return ks
}
