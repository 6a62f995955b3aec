package dynamostore

import (
	"context"
	"maps"
	"math"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// sweeper is the background sweeper's settings, from Options, and state.
type sweeper struct {
	interval    time.Duration
	sweepLease  bool
	sweepTTL    bool // Options.SweepWithTTL
	ttlRecheck  time.Duration
	segments    int
	readRate    float64
	grace       time.Duration
	leaseFor    time.Duration // the sweeper lease's term: CleanupInterval, and at least minLease
	leaseHolder string        // this store's name on the sweeper lease
	leaseKey    string        // KeyPrefix + sessionitem.LeaseToken
	stopSweeper context.CancelFunc
	sweeperDone chan struct{}
}

// newSweeper returns the sweeper of resolved options o, which asks for the
// table's TTL status every ttlRecheck.
func newSweeper(o Options, ttlRecheck time.Duration) sweeper {
	return sweeper{
		interval:    o.CleanupInterval,
		sweepLease:  o.SweepLease,
		sweepTTL:    o.SweepWithTTL,
		ttlRecheck:  ttlRecheck,
		segments:    o.SweepSegments,
		readRate:    o.SweepReadRate,
		grace:       max(o.SweepGrace, 0),
		leaseFor:    max(o.CleanupInterval, minLease),
		leaseHolder: newLeaseHolder(),
		leaseKey:    o.KeyPrefix + sessionitem.LeaseToken,
	}
}

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
		limiter = rate.NewLimiter(rate.Limit(s.readRate), sessionitem.MaxPageReadUnits)
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
			for units := int(math.Ceil(aws.ToFloat64(page.ConsumedCapacity.CapacityUnits))); units > 0; units -= sessionitem.MaxPageReadUnits {
				if err := limiter.WaitN(ctx, min(units, sessionitem.MaxPageReadUnits)); err != nil {
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

// ttlDeletes reports whether the table's TTL deletes items by attr: its
// status is ENABLED or ENABLING on that attribute.
func ttlDeletes(ctx context.Context, client DescribeTimeToLiveAPIClient, table, expiryAttr string) (bool, error) {
	out, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		return false, err
	}
	attr, on := sessionitem.TTL(out.TimeToLiveDescription)
	return on && attr == expiryAttr, nil
}

// ttlWatch is the background sweeper's view of the table's TTL: while TTL
// deletes expired sessions, the sweeper stands down.
type ttlWatch struct {
	s       *DynamoStore
	client  DescribeTimeToLiveAPIClient // nil: never stand down
	next    time.Time                   // when to ask again
	standBy bool                        // TTL deletes; do not sweep
	warned  bool                        // a failed check was logged
}

func (s *DynamoStore) newTTLWatch() *ttlWatch {
	w := &ttlWatch{s: s}
	if !s.sweepTTL {
		w.client = s.describeTTL
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
