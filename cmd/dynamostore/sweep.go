package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

func deleteExpired(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	t, err := f.describeTable(ctx, client)
	if err != nil {
		return err
	}
	if err := f.checkReadRate(t); err != nil {
		return err
	}
	start := time.Now()
	// A dry run is the real run, DeleteExpired itself, with a client that
	// answers each conditional delete as if it held without sending it: the
	// same Scan, segments, read cap, grace and rule, whose filter is the
	// delete's condition, so it counts what a real run would delete at that
	// moment.
	counter := &countingClient{Client: client, dryRun: f.dryRun, keyAttr: f.opts.KeyAttribute}
	store := dynamostore.NewWithCleanupInterval(counter, 0, f.options)
	verb, removes := "deleted", "removed"
	if f.dryRun {
		verb, removes = "would delete", "would remove"
	}
	stop := f.progress.start(func() string {
		deleted := counter.deleted.Load()
		return fmt.Sprintf("delete-expired %s: scanned %d items, %s %d (%.0f per second)",
			f.opts.TableName, counter.scanned.Load(), verb, deleted, float64(deleted)/time.Since(start).Seconds())
	})
	n, err := store.DeleteExpired(ctx)
	stop()
	elapsed := time.Since(start)
	inFlight := counter.sent.Load() - counter.deleted.Load() - counter.removed.Load() - counter.refused.Load()
	atLeast := ""
	if err != nil && inFlight > 0 {
		atLeast = "at least " // sent, unanswered: DynamoDB may have applied them
	}
	// The grace says why stats counts more expired sessions than this.
	summary := fmt.Sprintf("%s %s%d expired sessions of %d items scanned in %s (%.0f per second), each expired at least %s ago (--grace)",
		verb, atLeast, n, counter.scanned.Load(), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), formatDuration(f.opts.SweepGrace))
	if removed := counter.removed.Load(); removed > 0 {
		// DeleteExpired removes them without counting them as sessions.
		summary += fmt.Sprintf("; %s %d revocations whose period was over", removes, removed)
	}
	if err != nil {
		if inFlight > 0 {
			summary += fmt.Sprintf("; %d more deletes were in flight and may have been applied", inFlight)
		}
		fmt.Fprintf(out, "stopped early: %s\n", summary)
		return err
	}
	fmt.Fprintln(out, summary)
	if n > 0 || counter.scanned.Load() == 0 {
		return nil
	}
	// Nothing to delete in a table that has items: see whether a name is
	// wrong, by a sample of them.
	sample, err := f.sampleScan(ctx, client)
	if err != nil {
		return err
	}
	if m := f.misnamed(sample); m != nil {
		return fmt.Errorf("%s no expired session: %s", verb, m)
	}
	return nil
}

func stats(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	if _, err := f.describeTable(ctx, client); err != nil {
		return err
	}
	fmt.Fprintf(f.stderr, "a full Scan of table %s: it reads, and is billed for, every item\n", f.opts.TableName)
	st, err := scanTable(ctx, client, f, time.Now())
	if err != nil {
		fmt.Fprintf(out, "stopped early: the counts of the %d items scanned before it stopped\n", st.scanned)
		st.print(out, f.opts.SweepGrace)
		return err
	}
	st.print(out, f.opts.SweepGrace)
	m := f.misnamed(st.sample)
	switch {
	case m == nil:
	case st.live+st.expired+st.corrupt+st.revocations == 0:
		return fmt.Errorf("no session found: %s", m)
	case m.flag != "key-prefix":
		// Some are sessions; others under the prefix have none of the
		// names, which is worth a look.
		fmt.Fprintf(f.stderr, "warning: of the items that are not this store's sessions, %s\n", m)
	}
	return nil
}

type tableStats struct {
	scanned, live, expired, corrupt int
	pastGrace                       int // of the expired, those a sweep with --grace deletes
	revocations, other              int
	compressed, sealed              int
	sizes                           []int                             // data bytes of sessions, live and expired
	sample                          []map[string]types.AttributeValue // the first items that are no session, for misnamed
}

func (st *tableStats) print(out io.Writer, grace time.Duration) {
	fmt.Fprintf(out, "items scanned: %d\nlive sessions: %d\nexpired sessions: %d\nexpired sessions past --grace %s: %d (what delete-expired --grace %s deletes)\ncompressed sessions: %d\nencrypted sessions: %d\nunreadable sessions: %d\nrevocations: %d\nnot this store's sessions: %d\n",
		st.scanned, st.live, st.expired, formatDuration(grace), st.pastGrace, formatDuration(grace), st.compressed, st.sealed, st.corrupt, st.revocations, st.other)
	if len(st.sizes) == 0 {
		return
	}
	sizes := slices.Sorted(slices.Values(st.sizes))
	pct := func(p int) int { return sizes[(len(sizes)-1)*p/100] }
	fmt.Fprintf(out, "session data bytes as stored: min %d, p50 %d, p90 %d, p99 %d, max %d\n",
		sizes[0], pct(50), pct(90), pct(99), sizes[len(sizes)-1])
}

// scanTable reads every item of the table and counts, by the store's rules
// (package sessionitem), the sessions under the key prefix's fence, live or
// expired at at, the revocations, and every other item apart. An expired
// session is counted expired whether its data can be read or not, as the
// sweep deletes it, and apart when it expired at least --grace before at,
// as the sweep's rule says; an unexpired one whose data the store cannot
// read is unreadable. On error it returns the counts so far.
func scanTable(ctx context.Context, client *dynamodb.Client, f *flags, at time.Time) (tableStats, error) {
	var st tableStats
	var read atomic.Int64
	stop := f.progress.start(func() string {
		return fmt.Sprintf("scanning %s: %d items read", f.opts.TableName, read.Load())
	})
	defer stop()
	names := f.itemNames()
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: &f.opts.TableName})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return st, fmt.Errorf("scan table %s: %w", f.opts.TableName, err)
		}
		read.Add(int64(page.ScannedCount))
		for _, item := range page.Items {
			st.scanned++
			switch sessionitem.Classify(item, names) {
			case sessionitem.Other:
				st.other++ // another application's, the sweeper lease, or no session
				if len(st.sample) < sampleSize {
					st.sample = append(st.sample, item)
				}
				continue
			case sessionitem.Revocation:
				st.revocations++ // what a Delete leaves: no session
				continue
			}
			expiry, err := sessionitem.ExpiryMillis(item, f.opts.ExpiryAttribute)
			if err != nil {
				st.corrupt++
				continue
			}
			// Sized as stored: compressed, sealed or plain, as the
			// attribute's name says; reading it needs no key.
			data, format, err := sessionitem.Data(item, f.opts.DataAttribute)
			if err == nil && format.Compressed && !format.Sealed {
				// The store would refuse it; sealed data needs the key.
				_, err = sessionitem.Decompress(data)
			}
			if sessionitem.Expired(expiry, at) {
				// The sweep's rule: a session's shape, expired, whether
				// its data can be read or not.
				st.expired++
				if sessionitem.Expired(expiry, at.Add(-f.opts.SweepGrace)) {
					st.pastGrace++
				}
			} else if err != nil {
				st.corrupt++ // unexpired, and the store cannot read it
				continue
			} else {
				st.live++
			}
			if err != nil {
				continue
			}
			if format.Compressed {
				st.compressed++
			}
			if format.Sealed {
				st.sealed++
			}
			st.sizes = append(st.sizes, len(data))
		}
	}
	return st, nil
}

// countingClient counts the items a sweep scans, the sessions it deletes
// and the revocations it removes (apart, as DeleteExpired counts them), for
// the progress line and the summary, and the deletes it sent and DynamoDB
// refused, so that those in flight when the sweep stopped are told apart;
// with dryRun, it sends no DeleteItem and answers each as if its condition
// held.
type countingClient struct {
	dynamostore.Client
	dryRun                                   bool
	keyAttr                                  string
	scanned, sent, deleted, removed, refused atomic.Int64
	revocations                              sync.Map // the keys of the revocations the Scan found
}

func (c *countingClient) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := c.Client.Scan(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	c.scanned.Add(int64(out.ScannedCount))
	for _, item := range out.Items {
		if key, ok := item[c.keyAttr].(*types.AttributeValueMemberS); ok && sessionitem.Revoked(item) {
			c.revocations.Store(key.Value, true)
		}
	}
	return out, err
}

func (c *countingClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	done := &c.deleted
	if key, ok := in.Key[c.keyAttr].(*types.AttributeValueMemberS); ok {
		if _, revocation := c.revocations.LoadAndDelete(key.Value); revocation {
			done = &c.removed
		}
	}
	if c.dryRun {
		done.Add(1)
		return &dynamodb.DeleteItemOutput{}, nil
	}
	if ctx.Err() == nil { // else the SDK sends nothing
		c.sent.Add(1)
	}
	out, err := c.Client.DeleteItem(ctx, in, optFns...)
	switch {
	case err == nil:
		done.Add(1)
	case refused(err):
		c.refused.Add(1)
	}
	return out, err
}

// refused reports whether err is DynamoDB's answer that it did not apply a
// write: a 4xx (a condition that failed, throttling, a permission), not a
// 5xx, after which it may have applied it, nor an error of the network,
// which may have lost the answer to a write applied.
func refused(err error) bool {
	var answer *awshttp.ResponseError
	return errors.As(err, &answer) && answer.HTTPStatusCode() >= 400 && answer.HTTPStatusCode() < 500
}
