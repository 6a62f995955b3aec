package dynamostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

const (
	// sweepWorkers is how many DeleteItem requests a sweep keeps in flight
	// per Scan segment.
	// DeleteItem, not BatchWriteItem, because only DeleteItem takes the
	// condition that keeps a re-committed session alive.
	sweepWorkers = 8

	// What BatchGetItem leaves unprocessed for lack of capacity, which the
	// SDK does not retry, is asked for again after unprocessedBackoff,
	// doubling up to maxUnprocessedBackoff, at most maxUnprocessedRetries
	// times, as DynamoDB advises.
	unprocessedBackoff    = 50 * time.Millisecond
	maxUnprocessedBackoff = 5 * time.Second
	maxUnprocessedRetries = 10
)

// DeleteExpired deletes the sessions under this store's KeyPrefix that
// expired at least SweepGrace ago and returns how many it deleted; it also
// removes the revocations Delete left whose period is over, which it does
// not count. It scans the table page by page, in SweepSegments parallel
// segments and within SweepReadRate, with eventually consistent reads and a
// filter that returns only the keys of expired sessions and revocations,
// and deletes each with a DeleteItem conditional on the same filter: a
// session committed again in the meantime is kept, and so is every item
// that is not this store's session (another application's, another
// KeyPrefix's, or one without a session's attributes). Each segment keeps 8
// deletes in flight. The scan reads, and is billed for, the whole table.
//
// Every request is sent once through the store's Client, whose retryer is
// the one retry policy: with the SDK's defaults, 3 attempts of each
// request, with exponential backoff of up to 20 seconds between them, for
// throttling as for other retryable errors (set dynamodb.Options'
// RetryMaxAttempts or Retryer to change it). A request that still fails,
// throttled or not, ends the sweep with its error; the next sweep goes on
// where it left off, and SweepReadRate keeps a sweep within a table's
// capacity.
//
// An item has expired at least SweepGrace ago by the sweeper's clock, so no
// instance whose clock is within SweepGrace still serves it.
//
// The background sweeper calls DeleteExpired every CleanupInterval, unless
// the table's TTL deletes expired sessions (see Options.SweepWithTTL); call
// it yourself to sweep on your own schedule, which it does whatever the TTL
// status. On error it stops early and returns the count deleted so far.
func (s *DynamoStore) DeleteExpired(ctx context.Context) (deleted int, err error) {
	defer func(start time.Time) {
		s.metrics.done(ctx, opDeleteExpired, start, err, true)
		s.metrics.sweepDuration.Record(ctx, time.Since(start).Seconds(), s.metrics.sweepAttrs...)
	}(time.Now())
	filter, condNames, values := sessionitem.ExpiredCondition(s.names, s.now().Add(-s.grace))
	// The revocation marker is read so that a revocation whose period is
	// over is removed without being counted as a session.
	projection := "#k, #r"
	names := map[string]string{"#k": s.keyAttr}
	maps.Copy(names, condNames)
	// One limiter for all segments: the cap is on the sweep's total reads.
	var limiter *rate.Limiter
	if s.readRate > 0 {
		limiter = rate.NewLimiter(rate.Limit(s.readRate), maxPageReadUnits)
	}

	// The first error cancels the rest of the sweep and is the one returned.
	g, gctx := errgroup.WithContext(ctx)
	keys := make(chan sweptKey)
	g.Go(func() error {
		defer close(keys)
		scans, sctx := errgroup.WithContext(gctx)
		for segment := range s.segments {
			scans.Go(func() error {
				input := &dynamodb.ScanInput{
					TableName:                 s.table,
					ProjectionExpression:      &projection,
					FilterExpression:          &filter,
					ExpressionAttributeNames:  names,
					ExpressionAttributeValues: values,
				}
				if s.segments > 1 {
					input.Segment = aws.Int32(int32(segment))
					input.TotalSegments = aws.Int32(int32(s.segments))
				}
				if limiter != nil {
					input.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
				} else {
					input.ReturnConsumedCapacity = s.metrics.capacityRequest(ctx)
				}
				return s.scanExpired(sctx, input, limiter, keys)
			})
		}
		return scans.Wait()
	})
	var count atomic.Int64
	for range sweepWorkers * s.segments {
		g.Go(func() error {
			for key := range keys {
				ok, err := s.deleteIfExpired(gctx, key.key, filter, condNames, values)
				if err != nil {
					return err
				}
				if ok && !key.revoked {
					count.Add(1)
					s.metrics.sweepItems.Add(ctx, 1, s.metrics.deleted...)
				}
			}
			return nil
		})
	}
	err = g.Wait()
	if err == nil && ctx.Err() != nil {
		// The caller's context ended between pages.
		err = s.opError("delete expired", ctx.Err())
	}
	return int(count.Load()), err
}

// maxPageReadUnits is the most read capacity one Scan page can consume: 1 MB
// read with eventual consistency, at 0.5 units per 4 KB.
const maxPageReadUnits = 128

// sweptKey is the key of an expired item, and whether it is a revocation.
type sweptKey struct {
	key     string
	revoked bool
}

// scanExpired sends the key of every expired item that input's Scan finds to
// keys, waiting on limiter, when there is one, for the capacity each page
// consumed.
func (s *DynamoStore) scanExpired(ctx context.Context, input *dynamodb.ScanInput, limiter *rate.Limiter, keys chan<- sweptKey) error {
	p := dynamodb.NewScanPaginator(s.client, input)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.opError("delete expired: scan", err)
		}
		s.metrics.sweepItems.Add(ctx, int64(page.ScannedCount), s.metrics.scanned...)
		s.metrics.consumed(ctx, opDeleteExpired, kindRead, page.ConsumedCapacity)
		if limiter != nil && page.ConsumedCapacity != nil {
			// WaitN refuses more than the burst at once, so wait in bursts.
			for units := int(math.Ceil(aws.ToFloat64(page.ConsumedCapacity.CapacityUnits))); units > 0; units -= maxPageReadUnits {
				if err := limiter.WaitN(ctx, min(units, maxPageReadUnits)); err != nil {
					return s.opError("delete expired", err)
				}
			}
		}
		for _, item := range page.Items {
			key, ok := item[s.keyAttr].(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			if _, ok := sessionitem.Token(key.Value, s.prefix); !ok {
				continue // under a longer KeyPrefix, or not a session's key
			}
			select {
			case keys <- sweptKey{key.Value, sessionitem.Revoked(item)}:
			case <-ctx.Done():
				return nil // the caller reports why
			}
		}
	}
	return nil
}

// deleteIfExpired deletes the item with key if cond, the sweep's filter,
// with its names and values, still holds, and reports whether it did.
func (s *DynamoStore) deleteIfExpired(ctx context.Context, key, cond string, names map[string]string, values map[string]types.AttributeValue) (bool, error) {
	return s.deleteIf(ctx, opDeleteExpired, &dynamodb.DeleteItemInput{
		TableName:                 s.table,
		Key:                       map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: key}},
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
}

// deleteIf sends input, a conditional DeleteItem for op, retrying it while
// it is throttled, and reports whether the condition held and the item went.
func (s *DynamoStore) deleteIf(ctx context.Context, operation operation, input *dynamodb.DeleteItemInput) (bool, error) {
	input.ReturnConsumedCapacity = s.metrics.capacityRequest(ctx)
	return s.writeIf(ctx, operation, func() (*types.ConsumedCapacity, error) {
		out, err := s.client.DeleteItem(ctx, input)
		if err != nil {
			return nil, err
		}
		return out.ConsumedCapacity, nil
	})
}

// putIf is deleteIf for a conditional PutItem.
func (s *DynamoStore) putIf(ctx context.Context, operation operation, input *dynamodb.PutItemInput) (bool, error) {
	input.ReturnConsumedCapacity = s.metrics.capacityRequest(ctx)
	return s.writeIf(ctx, operation, func() (*types.ConsumedCapacity, error) {
		out, err := s.client.PutItem(ctx, input)
		if err != nil {
			return nil, err
		}
		return out.ConsumedCapacity, nil
	})
}

// writeIf calls send, a conditional write for op, and reports whether the
// condition held and the write went. It retries nothing itself: the
// client's retryer is the one retry policy (see DeleteExpired).
func (s *DynamoStore) writeIf(ctx context.Context, operation operation, send func() (*types.ConsumedCapacity, error)) (bool, error) {
	consumed, err := send()
	var condFailed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		s.metrics.consumed(ctx, operation, kindWrite, consumed)
		return true, nil
	case errors.As(err, &condFailed):
		return false, nil
	}
	return false, s.opError(operation.String(), err)
}

// sleepCtx waits for d, or until ctx ends and returns its error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// The sweeper lease is the item keyed KeyPrefix + leaseToken (see
// sessionitem.LeaseToken). It has no data or expiry attribute, so neither
// TTL nor a sweep deletes it; it holds its holder and its end in Unix
// milliseconds, since a CleanupInterval may be shorter than a second.
const (
	// minLease is the shortest term of the sweeper lease: a lease of a
	// short CleanupInterval lasts this long, so that a sweep on a slow
	// machine is not stopped for want of a renewal in time. The holder
	// takes it again at each tick, and gives it up when it stops.
	minLease = 10 * time.Second

	leaseToken     = sessionitem.LeaseToken
	leaseOwnerAttr = "lease_owner"
	leaseUntilAttr = "lease_until_ms"
)

// newLeaseHolder returns a random name for this store on the lease.
func newLeaseHolder() string {
	var b [12]byte
	rand.Read(b[:]) // never fails, per crypto/rand
	return hex.EncodeToString(b[:])
}

// acquireLease takes or renews the sweeper lease until now+leaseFor and
// reports whether this store holds it.
func (s *DynamoStore) acquireLease(ctx context.Context) (bool, error) {
	now := s.now()
	cond := "attribute_not_exists(#k) OR #u <= :now OR #o = :me"
	out, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		// The lease is the background sweep's: counted as delete_expired.
		ReturnConsumedCapacity: s.metrics.capacityRequest(ctx),
		TableName:              s.table,
		Item: map[string]types.AttributeValue{
			s.keyAttr:      &types.AttributeValueMemberS{Value: s.leaseKey},
			leaseOwnerAttr: &types.AttributeValueMemberS{Value: s.leaseHolder},
			leaseUntilAttr: &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(s.leaseFor).UnixMilli(), 10)},
		},
		ConditionExpression:      &cond,
		ExpressionAttributeNames: map[string]string{"#k": s.keyAttr, "#u": leaseUntilAttr, "#o": leaseOwnerAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
			":me":  &types.AttributeValueMemberS{Value: s.leaseHolder},
		},
	})
	var condFailed *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &condFailed):
		return false, nil
	case err != nil:
		return false, s.opError("take sweeper lease", err)
	}
	s.metrics.consumed(ctx, opDeleteExpired, kindWrite, out.ConsumedCapacity)
	return true, nil
}

// releaseLease gives the lease up, if this store holds it, so that another
// store sweeps at its next tick rather than after the lease lapses.
func (s *DynamoStore) releaseLease(ctx context.Context) error {
	cond := "#o = :me"
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 s.table,
		Key:                       map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: s.leaseKey}},
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  map[string]string{"#o": leaseOwnerAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":me": &types.AttributeValueMemberS{Value: s.leaseHolder}},
	})
	var condFailed *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &condFailed) {
		return s.opError("release sweeper lease", err)
	}
	return nil
}

// sweep is one tick of the background sweeper. It reports whether this
// store may hold the sweeper lease afterwards (it took it, or the attempt
// failed in a way that leaves it unknown) and whether it took it.
func (s *DynamoStore) sweep(ctx context.Context) (mayHold, held bool) {
	sctx := ctx
	if s.sweepLease {
		took := time.Now()
		var err error
		held, err = s.acquireLease(ctx)
		if err != nil && ctx.Err() == nil {
			s.logger.Error("dynamostore: sweep skipped", "table", s.tableName, "error", err)
		}
		if !held {
			return err != nil, false
		}
		var cancel context.CancelCauseFunc
		sctx, cancel = context.WithCancelCause(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.holdLease(sctx, cancel, took)
		}()
		defer func() { cancel(nil); <-done }()
	}
	n, err := s.DeleteExpired(sctx)
	switch {
	case ctx.Err() != nil:
	case sctx.Err() != nil:
		s.logger.Warn("dynamostore: sweep stopped", "table", s.tableName, "deleted", n, "reason", context.Cause(sctx))
	case err != nil:
		s.logger.Error("dynamostore: sweep failed", "table", s.tableName, "deleted", n, "error", err)
	default:
		s.logger.Debug("dynamostore: swept expired sessions", "table", s.tableName, "deleted", n)
	}
	return s.sweepLease, held
}

// errLeaseLost is why a sweep stops when its store can no longer tell
// that it holds the sweeper lease.
var errLeaseLost = errors.New("the sweeper lease could not be renewed before it lapsed, so another store may sweep; this one stopped")

// holdLease renews the sweeper lease, taken at took, every third of
// its term while the sweep whose context is ctx runs, and stops the
// sweep with cancel before the lease could lapse: when a renewal fails, or
// none has succeeded a quarter of its term before the last one taken
// ends (the margin allows for the sweep's requests to stop, and for
// clocks a little apart). So the Scans of two stores never overlap,
// however long a sweep takes.
func (s *DynamoStore) holdLease(ctx context.Context, cancel context.CancelCauseFunc, took time.Time) {
	margin := s.leaseFor / 4
	until := took.Add(s.leaseFor - margin)
	renew := time.NewTicker(s.leaseFor / 3)
	defer renew.Stop()
	for {
		lapse := time.NewTimer(time.Until(until))
		select {
		case <-ctx.Done():
			lapse.Stop()
			return
		case <-lapse.C:
			cancel(errLeaseLost)
			return
		case <-renew.C:
			lapse.Stop()
		}
		start := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, until)
		ok, err := s.acquireLease(rctx)
		rcancel()
		if !ok {
			if err == nil {
				err = errLeaseLost // another store holds it
			} else {
				err = fmt.Errorf("%w: %w", errLeaseLost, err)
			}
			cancel(err)
			return
		}
		until = start.Add(s.leaseFor - margin)
	}
}

// ttlDescriber is the one operation beyond Client's that the sweeper uses,
// when its client has it: *dynamodb.Client does, a DAX client does not.
type ttlDescriber interface {
	DescribeTimeToLive(ctx context.Context, params *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}

// ttlDeletes reports whether the table's TTL deletes items by attr: its
// status is ENABLED or ENABLING on that attribute.
func ttlDeletes(ctx context.Context, client ttlDescriber, table, attr string) (bool, error) {
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		return false, err
	}
	d := out.TimeToLiveDescription
	if d == nil || aws.ToString(d.AttributeName) != attr {
		return false, nil
	}
	return d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling, nil
}

// ttlWatch is the background sweeper's view of the table's TTL: while TTL
// deletes expired sessions, the sweeper stands down.
type ttlWatch struct {
	s       *DynamoStore
	client  ttlDescriber // nil: never stand down
	next    time.Time    // when to ask again
	standBy bool         // TTL deletes; do not sweep
	warned  bool         // a failed check was logged
}

func (s *DynamoStore) newTTLWatch() *ttlWatch {
	w := &ttlWatch{s: s}
	if c, ok := s.client.(ttlDescriber); ok && !s.sweepTTL {
		w.client = c
	}
	return w
}

// standDown reports whether the sweeper should skip this tick, asking for
// the TTL status when the last answer is older than ttlRecheck. Until an
// answer comes, and whenever DynamoDB refuses the question, it sweeps.
func (w *ttlWatch) standDown(ctx context.Context) bool {
	s := w.s
	if w.client == nil || time.Now().Before(w.next) {
		return w.standBy
	}
	on, err := ttlDeletes(ctx, w.client, s.tableName, s.expiryAttr)
	switch {
	case ctx.Err() != nil:
		return true // stopping
	case isUnknownOperation(err):
		// An endpoint without a TTL API (dynalite's older versions):
		// nothing deletes expired items but the sweeper.
		on, err = false, nil
	case isAccessDenied(err):
		if !w.warned {
			w.warned = true
			s.logger.Warn("dynamostore: the sweeper may not read the table's TTL status, so it scans as if TTL were off; grant dynamodb:DescribeTimeToLive, or set Options.SweepWithTTL to keep scanning",
				"table", s.tableName, "error", err)
		}
		on, err = false, nil
	case err != nil:
		// Ask again at the next tick, keeping the last answer meanwhile.
		if !w.warned {
			w.warned = true
			s.logger.Warn("dynamostore: the sweeper could not read the table's TTL status", "table", s.tableName, "error", err)
		}
		return w.standBy
	}
	w.next = time.Now().Add(s.ttlRecheck)
	switch {
	case on && !w.standBy:
		s.logger.Info("dynamostore: the sweeper stands down: the table's TTL deletes expired sessions",
			"table", s.tableName, "attribute", s.expiryAttr, "recheck", s.ttlRecheck)
	case !on && w.standBy:
		s.logger.Info("dynamostore: the sweeper resumes: the table's TTL no longer deletes expired sessions",
			"table", s.tableName, "attribute", s.expiryAttr)
	}
	w.standBy = on
	return on
}

func isAccessDenied(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "AccessDeniedException"
}

// startCleanup runs sweep every CleanupInterval until StopCleanup.
func (s *DynamoStore) startCleanup() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopSweeper = cancel
	s.sweeperDone = make(chan struct{})
	go func() {
		defer close(s.sweeperDone)
		ticker := time.NewTicker(s.interval)
		defer ticker.Stop()
		mayHold, held := false, false
		// held follows what this store knows: it took the lease at its
		// last tick, or gave it up.
		setHeld := func(h bool) {
			if h != held {
				held = h
				n := int64(-1)
				if h {
					n = 1
				}
				s.metrics.leaseHeld.Add(context.Background(), n, s.metrics.leaseAttrs...)
			}
		}
		defer setHeld(false)
		ttl := s.newTTLWatch()
		ttl.standDown(ctx) // ask now, so the log tells at once
		for {
			select {
			case <-ctx.Done():
				// A store that never held the lease has nothing to
				// release, and spares the write.
				if mayHold {
					// The store's context is cancelled; give the release a
					// few seconds of its own.
					rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if err := s.releaseLease(rctx); err != nil {
						s.logger.Warn("dynamostore: sweeper lease not released; it lapses after CleanupInterval, or after 10 seconds if CleanupInterval is shorter", "table", s.tableName, "error", err)
					}
					cancel()
				}
				return
			case <-ticker.C:
				if ttl.standDown(ctx) {
					setHeld(false)
					continue
				}
				var took bool
				mayHold, took = s.sweep(ctx)
				setHeld(took)
			}
		}
	}()
}

// StopCleanup stops the background sweeper and returns once it has exited,
// cancelling a sweep in progress. It is safe to call more than once, from
// several goroutines, and on a store without a sweeper.
func (s *DynamoStore) StopCleanup() {
	if s.stopSweeper == nil {
		return
	}
	s.stopSweeper()
	<-s.sweeperDone
}
