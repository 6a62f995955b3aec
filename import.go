package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// ImportOptions configures Import. Import starts from the zero value, so
// each field's zero value is its default.
type ImportOptions struct {
	// WriteRate caps the write capacity units per second Import's writes
	// consume, so that an import leaves provisioned capacity to the
	// application. Each session counts one write unit per KB (1,024 bytes)
	// of its item, rounded up, whether the table stores it or refuses it,
	// as DynamoDB bills them; a session with an owner also writes one unit
	// to the owner index, which has capacity of its own and is not counted.
	// Up to one second's worth of units may be written at once before the
	// cap applies. With a cap, Import encodes each session once more,
	// before its write, to know its size. Zero, the default, means no cap,
	// and so does a negative value.
	WriteRate float64

	// IdleTimeout is the IdleTimeout of the scs.SessionManager that wrote
	// the sessions, when it has one. scs enforces it through the store's
	// expiry alone, which All does not return, so without it an imported
	// session idle for longer would live to its deadline. With it, each
	// session expires at the earlier of its deadline and IdleTimeout after
	// Import writes it, as scs's Commit at a request would set it: a user
	// idle at the import keeps IdleTimeout from then. Zero, the default,
	// stores the deadline.
	IdleTimeout time.Duration

	// Workers is how many writes Import keeps in flight. Zero or less
	// means 8, as DeleteOwner and the sweeper keep.
	Workers int

	// Progress, when set, is called with the counts so far each time
	// another 100 sessions are done with, and whenever a session is done
	// with a second or more after the last call; and once more when Import
	// returns, with the final counts, however it ends. Calls are never
	// concurrent, and the writers wait for each to return, so it should
	// return quickly. It may cancel Import's context.
	Progress func(ImportProgress)
}

// ImportProgress counts what Import has done with the sessions of the
// store it imports from. Each session it has taken up (Read) is counted
// once more when it is done with: in Written, or in the reason it was
// skipped. When Import has been through every session, Read is Total and
// the sum of the other counts; when it stopped early, the sessions read
// and not counted again were not written.
type ImportProgress struct {
	// Total is how many sessions the store's All returned.
	Total int
	// Read is how many of them Import has taken up so far.
	Read int
	// Written is how many it stored in the table.
	Written int
	// Expired is how many it skipped because the deadline their data
	// holds, as the codec decodes it, had passed by the store's clock.
	Expired int
	// Present is how many the table refused because it holds a live
	// session (a user active during the import, say) or a revocation in
	// force under the token; see CommitNewCtx.
	Present int
	// Undecodable is how many it skipped because the codec could not
	// decode their data.
	Undecodable int
	// Unstorable is how many it skipped because the table cannot hold
	// them: the token is not one the store takes (see Find), or the item
	// would exceed DynamoDB's 400 KB limit (ErrTooLarge).
	Unstorable int
}

// importProgressEvery is how many sessions Import is done with between
// two calls of ImportOptions.Progress, at the least.
const importProgressEvery = 100

// importDrain is how long the writes Import has already sent when its
// context ends may take to finish: long enough for DynamoDB to answer, so
// that the count Import returns is what the table holds, and short enough
// that Import still returns when DynamoDB does not answer.
const importDrain = 10 * time.Second

// Import copies every session of from whose deadline is still ahead into
// the table, with that deadline as its expiry (or an earlier one, with
// ImportOptions.IdleTimeout), and returns how many it wrote. The deadline
// is the one the session's data holds, as codec decodes it (scs encodes
// it with the values): pass the codec of the scs.SessionManager that
// wrote the sessions, with the types its values hold registered
// (gob.Register, for scs.GobCodec) as the application registers them, or
// the sessions count as Undecodable.
//
// Each session is stored with CommitNewCtx, so it never overwrites a
// session the table already holds (a user active during the import keeps
// their newest data) and never brings back one deleted in the table less
// than Options.RevocationPeriod ago: such sessions count as Present.
// Import may therefore run while the application serves requests, and run
// again: a second run over the same sessions writes none and returns 0.
// A write whose answer was lost and that the SDK's retryer sent again
// finds the session it stored, and counts it as Present. Import returns
// an error, before any request, when from is on the store's own table
// (a TableStore such as a DynamoStore or a CachedStore in front of one),
// and when the store has Options.ClearTokenFallback, under which a
// session's clear key, which Import does not read, may hold newer data or
// a revocation.
// Sessions it cannot decode, or whose token or size the table cannot hold,
// are skipped and counted (see ImportProgress), never logged. Any other
// error of a write ends the import, as ctx ending does.
//
// It reads from with AllCtx when from is an scs.IterableCtxStore, and with
// All otherwise, so it holds every session of from in memory at once, as
// All returns them. Each session it does not skip costs one PutItem, which
// the table bills whether it stores the session or refuses it: one write
// unit per KB of the item, as Commit's, and one more in the owner index
// for a session stored with an owner. Reading from costs what its All
// costs (for a DynamoStore, a Scan of its table). ImportOptions caps the
// write units per second, sets how many writes are in flight (8 by
// default) and reports progress.
//
// When ctx ends, Import sends no more writes, lets those already sent
// finish (for up to 10 seconds), and returns how many it wrote with an
// error wrapping ctx's error: every session it counts is in the table, and
// running Import again imports the rest. On another error it stops the
// same way and returns the count so far with the error.
func (s *DynamoStore) Import(ctx context.Context, from scs.IterableStore, codec scs.Codec, optFns ...func(*ImportOptions)) (written int, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opImport, start, err, true) }(time.Now())
	var o ImportOptions
	for _, fn := range optFns {
		fn(&o)
	}
	switch {
	case from == nil:
		return 0, fmt.Errorf("dynamostore: import in table %q: the store to import from is nil", s.tableName)
	case isTable(from, s.tableName):
		// Its All would list the table's own keys as tokens, a hashed
		// one among them, and copy each under a key of its own.
		return 0, fmt.Errorf("dynamostore: import in table %q: the store to import from is on the same table; import from another store", s.tableName)
	case s.opts.ClearTokenFallback:
		// A session's clear key may hold newer data or a revocation,
		// which a write under the hashed key would not see.
		return 0, fmt.Errorf("dynamostore: import in table %q: the store has Options.ClearTokenFallback; import before turning it on, or once it is off", s.tableName)
	case codec == nil:
		return 0, fmt.Errorf("dynamostore: import in table %q: the codec is nil; pass the one the scs.SessionManager that wrote the sessions uses, such as scs.GobCodec{}", s.tableName)
	case math.IsNaN(o.WriteRate) || math.IsInf(o.WriteRate, 0):
		return 0, fmt.Errorf("dynamostore: import in table %q: WriteRate is %v; want a number of write units per second, or 0 for no cap", s.tableName, o.WriteRate)
	}
	workers := o.Workers
	if workers <= 0 {
		workers = sweepWorkers
	}

	if ctx.Err() != nil {
		return 0, s.opError("import", ctx.Err())
	}
	var sessions map[string][]byte
	if c, ok := from.(scs.IterableCtxStore); ok {
		sessions, err = c.AllCtx(ctx)
	} else {
		sessions, err = from.All()
	}
	if err != nil {
		return 0, fmt.Errorf("dynamostore: import in table %q: reading the sessions to import: %w", s.tableName, err)
	}

	counts := &importCounts{fn: o.Progress, last: time.Now()}
	counts.p.Total = len(sessions)
	var limiter *rate.Limiter
	if o.WriteRate > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.WriteRate), max(1, int(math.Ceil(o.WriteRate))))
	}
	wctx, stopWrites := drainContext(ctx, importDrain)
	defer stopWrites()

	// The first error cancels the rest and is the one returned.
	g, gctx := errgroup.WithContext(ctx)
	todo := make(chan importSession)
	for range workers {
		g.Go(func() error {
			for is := range todo {
				if err := s.importOne(gctx, wctx, limiter, o.IdleTimeout, is, counts); err != nil || gctx.Err() != nil {
					return err // nil when the context ended: the caller says why
				}
			}
			return nil
		})
	}
feed:
	for token, data := range sessions {
		if gctx.Err() != nil {
			break
		}
		counts.add(func(p *ImportProgress) { p.Read++ })
		deadline, _, derr := codec.Decode(data)
		switch {
		case derr != nil:
			counts.add(func(p *ImportProgress) { p.Undecodable++ })
		case sessionitem.Expired(deadline.UnixMilli(), s.now()):
			counts.add(func(p *ImportProgress) { p.Expired++ })
		default:
			if _, ok := s.key(token); !ok {
				counts.add(func(p *ImportProgress) { p.Unstorable++ })
				continue
			}
			select {
			case todo <- importSession{token, data, deadline}:
			case <-gctx.Done():
				break feed
			}
		}
	}
	close(todo)
	err = g.Wait()
	final := counts.finish()
	if err == nil && ctx.Err() != nil && final.done() < final.Total {
		err = s.opError("import", ctx.Err())
	}
	return final.Written, err
}

// importSession is a session Import is to write.
type importSession struct {
	token  string
	data   []byte
	expiry time.Time
}

// importOne writes is with CommitNewCtx, to expire at its deadline or idle
// from now if that is earlier, waiting on limiter first, when there is
// one, for its write units, and counts the outcome. It sends nothing once
// ctx has ended; the write itself goes with wctx, so that a write sent is
// counted when it is stored.
func (s *DynamoStore) importOne(ctx, wctx context.Context, limiter *rate.Limiter, idle time.Duration, is importSession, counts *importCounts) error {
	if idle > 0 {
		if ie := s.now().Add(idle); ie.Before(is.expiry) {
			is.expiry = ie
		}
	}
	if limiter != nil {
		if err := waitUnits(ctx, limiter, s.importUnits(is)); err != nil {
			return nil // the context ended: the caller says why
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	stored, err := s.CommitNewCtx(wctx, is.token, is.data, is.expiry)
	switch {
	case errors.Is(err, ErrTooLarge):
		counts.add(func(p *ImportProgress) { p.Unstorable++ })
	case err != nil:
		return err
	case stored:
		counts.add(func(p *ImportProgress) { p.Written++ })
	default:
		counts.add(func(p *ImportProgress) { p.Present++ })
	}
	return nil
}

// importUnits returns the write units of is's item, as DynamoDB bills a
// PutItem of it: one per KB, rounded up. An item that cannot be encoded
// counts one; its write fails with the same error.
func (s *DynamoStore) importUnits(is importSession) int {
	key, _ := s.key(is.token)
	owner, hasOwner, _ := s.owner(is.data)
	item, err := s.encode(key, is.data, is.expiry, owner, hasOwner, "", s.hashTokens)
	if err != nil {
		return 1
	}
	return max(1, (storedSize(item)+1023)/1024)
}

// waitUnits waits until limiter allows n units, or until ctx ends and
// returns its error. A reservation is at most the limiter's burst, so n is
// waited for in bursts.
func waitUnits(ctx context.Context, limiter *rate.Limiter, n int) error {
	for ; n > 0; n -= limiter.Burst() {
		r := limiter.ReserveN(time.Now(), min(n, limiter.Burst()))
		if err := sleepCtx(ctx, r.Delay()); err != nil {
			r.Cancel()
			return err
		}
	}
	return nil
}

// drainContext returns a context with ctx's values that ends d after ctx
// ends, or when stop is called, whichever is first.
func drainContext(ctx context.Context, d time.Duration) (drained context.Context, stop func()) {
	drained, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var (
		mu      sync.Mutex
		stopped bool
		timer   *time.Timer
	)
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			timer = time.AfterFunc(d, cancel)
		}
	})
	return drained, func() {
		stopAfter()
		mu.Lock()
		stopped = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// importCounts are Import's counts, which its goroutines update, and the
// Progress function they are reported to.
type importCounts struct {
	mu   sync.Mutex
	p    ImportProgress
	fn   func(ImportProgress) // nil: nothing reported
	last time.Time            // the last call of fn
}

// add counts with update and calls the Progress function, with mu held,
// when another importProgressEvery sessions are done with since the last
// call, or a second has passed since the last call and a session is done
// with.
func (c *importCounts) add(update func(*ImportProgress)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.p.done()
	update(&c.p)
	done := c.p.done()
	if c.fn == nil || done == before {
		return
	}
	if done%importProgressEvery == 0 || time.Since(c.last) >= time.Second {
		c.fn(c.p)
		c.last = time.Now()
	}
}

// finish returns the final counts, reporting them to the Progress function.
func (c *importCounts) finish() ImportProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fn != nil {
		c.fn(c.p)
	}
	return c.p
}

// done returns how many sessions p counts as done with.
func (p *ImportProgress) done() int {
	return p.Written + p.Expired + p.Present + p.Undecodable + p.Unstorable
}

// isTable reports whether s is a TableStore on the table named table.
func isTable(s any, table string) bool {
	ts, ok := s.(TableStore)
	return ok && ts.Options().TableName == table
}
