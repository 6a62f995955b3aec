package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// indexNoticeInterval is how often create-table, off a terminal, writes a
// line on stderr while it waits for the owner index.
var indexNoticeInterval = 30 * time.Second

func createTable(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	w := &indexWatch{Client: client, f: f, start: time.Now()}
	stop := f.progress.start(w.line)
	err = dynamostore.CreateTable(ctx, w, f.options)
	stop()
	if err != nil {
		if status := w.waiting(); status != "" && ctx.Err() != nil {
			return fmt.Errorf("index %s of table %s did not become ACTIVE (it is %s after %s); the table and its sessions are kept: run '%s' again to wait on, with a longer --timeout, or '%s' to see it: %w",
				f.opts.OwnerIndex, f.opts.TableName, status, time.Since(w.start).Round(time.Second), f.command("create-table"), f.command("check"), err)
		}
		return err
	}
	// CreateTable returns nil on endpoints without the TTL API (dynalite,
	// for one), so say what the table really has.
	ttl := "TTL on " + f.opts.ExpiryAttribute
	d, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &f.opts.TableName})
	if err != nil || !ttlOn(d.TimeToLiveDescription) {
		ttl = "TTL not enabled (this endpoint has no TTL API); only the sweeper deletes expired sessions"
	}
	fmt.Fprintf(out, "table %s is ready: partition key %s (S), index %s on %s, %s\n",
		f.opts.TableName, f.opts.KeyAttribute, f.opts.OwnerIndex, f.opts.OwnerAttribute, ttl)
	return nil
}

// indexWatch is create-table's client: it watches the owner index's status
// in each DescribeTable that CreateTable's wait sends, for the progress
// line on a terminal and, off one, a line on stderr when the wait begins
// and every indexNoticeInterval.
type indexWatch struct {
	*dynamodb.Client
	f     *flags
	start time.Time

	mu     sync.Mutex
	status string    // the index's status while it is not ACTIVE
	items  int64     // the items it holds so far, as DescribeTable says
	told   time.Time // the last line on stderr
}

func (w *indexWatch) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	out, err := w.Client.DescribeTable(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	idx, _ := sessionitem.OwnerIndex(out.Table, w.f.opts.OwnerIndex, w.f.opts.OwnerAttribute)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status = ""
	if idx == nil || idx.IndexStatus == types.IndexStatusActive {
		return out, err
	}
	w.status = string(idx.IndexStatus)
	if aws.ToBool(idx.Backfilling) {
		w.status += ", backfilling"
	}
	w.items = aws.ToInt64(idx.ItemCount)
	if !w.f.progress.on() && time.Since(w.told) >= indexNoticeInterval {
		w.told = time.Now()
		fmt.Fprintf(w.f.stderr, "create-table %s: waiting for index %s to become ACTIVE: %s, %d items so far, %s (--timeout %s)\n",
			w.f.opts.TableName, w.f.opts.OwnerIndex, w.status, w.items, time.Since(w.start).Round(time.Second), formatDuration(w.f.timeout))
	}
	return out, err
}

// waiting returns the index's status when the last DescribeTable found it
// not ACTIVE, and "" otherwise.
func (w *indexWatch) waiting() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// line is the progress line.
func (w *indexWatch) line() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status == "" {
		return fmt.Sprintf("create-table %s: %s", w.f.opts.TableName, time.Since(w.start).Round(time.Second))
	}
	return fmt.Sprintf("create-table %s: index %s %s, %d items, %s", w.f.opts.TableName, w.f.opts.OwnerIndex, w.status, w.items, time.Since(w.start).Round(time.Second))
}

func check(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &f.opts.TableName})
	if err != nil {
		return fmt.Errorf("describe table %s: %w", f.opts.TableName, err)
	}
	t := desc.Table
	var keys []string
	for _, k := range t.KeySchema {
		typ := ""
		for _, d := range t.AttributeDefinitions {
			if aws.ToString(d.AttributeName) == aws.ToString(k.AttributeName) {
				typ = string(d.AttributeType)
			}
		}
		keys = append(keys, fmt.Sprintf("%s %s (%s)", k.KeyType, aws.ToString(k.AttributeName), typ))
	}
	billing := "PROVISIONED"
	if t.BillingModeSummary != nil && t.BillingModeSummary.BillingMode != "" {
		billing = string(t.BillingModeSummary.BillingMode)
	}
	fmt.Fprintf(out, "table: %s\nstatus: %s\nkey schema: %s\nbilling mode: %s\napproximate item count: %d\n",
		f.opts.TableName, t.TableStatus, strings.Join(keys, ", "), billing, aws.ToInt64(t.ItemCount))

	var problems []string
	if err := sessionitem.CheckKeySchema(t, f.opts.KeyAttribute); err != nil {
		problems = append(problems, err.Error())
	}
	idx, err := sessionitem.OwnerIndex(t, f.opts.OwnerIndex, f.opts.OwnerAttribute)
	switch {
	case idx == nil && len(t.GlobalSecondaryIndexes) > 0:
		// Another name, or a name mistyped: a --owner-index that names no
		// index while one is keyed on --owner-attribute is likely wrong.
		var others, owners []string
		for _, g := range t.GlobalSecondaryIndexes {
			name := aws.ToString(g.IndexName)
			var keys []string
			for _, k := range g.KeySchema {
				keys = append(keys, aws.ToString(k.AttributeName))
			}
			others = append(others, fmt.Sprintf("%s on %s", name, strings.Join(keys, " and ")))
			if _, err := sessionitem.OwnerIndex(t, name, f.opts.OwnerAttribute); err == nil {
				owners = append(owners, name)
			}
		}
		fmt.Fprintf(out, "owner index: %s missing; the table's indexes: %s\n", f.opts.OwnerIndex, strings.Join(others, ", "))
		if len(owners) > 0 {
			problems = append(problems, fmt.Sprintf("table %s has no index %q, but its index %s is keyed on %s; is --owner-index right?",
				f.opts.TableName, f.opts.OwnerIndex, strings.Join(owners, " and "), f.opts.OwnerAttribute))
		} else {
			fmt.Fprintf(out, "owner index: revoke, sessions and DeleteOwner need one on %s: is --owner-index or --owner-attribute wrong? If not, add it with '%s', which keeps the table and its sessions\n",
				f.opts.OwnerAttribute, f.command("create-table"))
		}
	case idx == nil:
		// Only DeleteOwner and OwnerTokens need it.
		fmt.Fprintf(out, "owner index: %s missing; revoke, sessions and DeleteOwner need it: add it with '%s', which keeps the table and its sessions\n", f.opts.OwnerIndex, f.command("create-table"))
	case err != nil:
		fmt.Fprintf(out, "owner index: %s, %s\n", f.opts.OwnerIndex, idx.IndexStatus)
		problems = append(problems, err.Error())
	default:
		fmt.Fprintf(out, "owner index: %s on %s, %s, projection %s\n", f.opts.OwnerIndex, f.opts.OwnerAttribute, idx.IndexStatus, idx.Projection.ProjectionType)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &f.opts.TableName})
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("describe TTL of table %s: %w", f.opts.TableName, err)
	case err != nil:
		fmt.Fprintf(out, "ttl: unknown (%v)\n", err)
		problems = append(problems, "TTL status cannot be read from this endpoint")
	case !ttlOn(ttl.TimeToLiveDescription):
		status := types.TimeToLiveStatusDisabled
		if ttl.TimeToLiveDescription != nil {
			status = ttl.TimeToLiveDescription.TimeToLiveStatus
		}
		fmt.Fprintf(out, "ttl: %s\n", status)
		problems = append(problems, fmt.Sprintf("TTL is %s, so only the sweeper deletes expired sessions; enable it on %s ('%s' does where the endpoint has the TTL API)", status, f.opts.ExpiryAttribute, f.command("create-table")))
	default:
		attr, _ := sessionitem.TTL(ttl.TimeToLiveDescription)
		fmt.Fprintf(out, "ttl: %s on %s\n", ttl.TimeToLiveDescription.TimeToLiveStatus, attr)
		if attr != f.opts.ExpiryAttribute {
			problems = append(problems, fmt.Sprintf("TTL is on %s, want %s", attr, f.opts.ExpiryAttribute))
		} else {
			fmt.Fprintln(out, "sweeper: the store's background sweeper stands down while TTL deletes expired sessions (Options.SweepWithTTL keeps it scanning); delete-expired still sweeps")
		}
	}
	for _, line := range replicaReport(t) {
		fmt.Fprintln(out, line)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Fprintln(out, "ok")
	return nil
}

// replicaReport describes the table's replicas, when it is a global table,
// and what they change for the store.
func replicaReport(t *types.TableDescription) []string {
	if len(t.Replicas) == 0 {
		return []string{"replicas: none (a table in one region)"}
	}
	var regions []string
	for _, r := range t.Replicas {
		regions = append(regions, fmt.Sprintf("%s (%s)", aws.ToString(r.RegionName), r.ReplicaStatus))
	}
	mode := t.MultiRegionConsistency
	if mode == "" {
		mode = types.MultiRegionConsistencyEventual
	}
	lines := []string{fmt.Sprintf("replicas: %s; multi-region consistency %s", strings.Join(regions, ", "), mode)}
	if mode == types.MultiRegionConsistencyStrong {
		lines = append(lines, "warning: DynamoDB TTL does not work on a multi-region strongly consistent (MRSC) table; keep the sweeper on (it sweeps where TTL is off) or run 'dynamostore delete-expired' on a schedule")
	} else {
		lines = append(lines,
			"warning: each region checks conditional writes on its own, so the sweeper lease is per region: expect one sweeper per region each CleanupInterval",
			"warning: make SweepGrace at least the replication lag, so a sweep in one region does not delete a session committed again in another")
	}
	return lines
}

// ttlOn is sessionitem.TTL's on.
func ttlOn(d *types.TimeToLiveDescription) bool {
	_, on := sessionitem.TTL(d)
	return on
}
