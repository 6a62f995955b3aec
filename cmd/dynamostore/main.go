// Command dynamostore manages the DynamoDB table of a dynamostore session
// store: it creates and checks the table, deletes expired sessions, and
// reports what the table holds.
//
// Usage:
//
//	dynamostore SUBCOMMAND [flags]
//
// Subcommands: create-table, check, delete-expired, stats, sessions, revoke.
// Every subcommand takes --table, --key-attribute, --data-attribute,
// --expiry-attribute, --key-prefix, --owner-attribute and --owner-index
// (defaults as the library's Options), and --endpoint, --region
// and --profile; otherwise the standard AWS configuration chain applies
// (environment, shared config, AWS_ENDPOINT_URL_DYNAMODB). Run
// `dynamostore SUBCOMMAND --help` for a subcommand's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

const usage = `usage: dynamostore SUBCOMMAND [flags]

Subcommands:
  create-table    create the session table (on-demand, owner index, TTL on the expiry attribute),
                  or add the owner index and TTL to an existing one
  check           check the table's key schema, owner index and TTL against the options
  delete-expired  delete expired sessions once (--dry-run only counts them)
  stats           count live and expired sessions and their sizes (a full Scan)
  sessions        count one owner's live sessions (--owner ID; a Query of the owner index)
  revoke          delete every session of one owner (--owner ID; a Query of the owner index)

Run 'dynamostore SUBCOMMAND --help' for the flags of a subcommand.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		progressOut = os.Stderr
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// progressOut receives delete-expired's progress line; main sets it when
// stderr is a terminal.
var progressOut io.Writer

// run executes one command line and returns the exit code: 0 on success, 1
// when the command failed or found a problem, 2 for a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmds := map[string]func(context.Context, *flags, io.Writer) error{
		"create-table":   createTable,
		"check":          check,
		"delete-expired": deleteExpired,
		"stats":          stats,
		"sessions":       sessions,
		"revoke":         revoke,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dynamostore: unknown subcommand %q\n\n%s", args[0], usage)
		return 2
	}
	f, err := parseFlags(args[0], args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if err := cmd(ctx, f, stdout); err != nil {
		fmt.Fprintf(stderr, "dynamostore %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// flags are the command line's settings, common and per subcommand.
type flags struct {
	opts                      dynamostore.Options
	endpoint, region, profile string
	dryRun                    bool
	segments                  int
	readRate                  float64
	owner                     string
	showTokens                bool
}

func parseFlags(name string, args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("dynamostore "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.opts.TableName, "table", "sessions", "DynamoDB table `name`")
	fs.StringVar(&f.opts.KeyAttribute, "key-attribute", "session_key", "partition key attribute, type S")
	fs.StringVar(&f.opts.DataAttribute, "data-attribute", "data", "session data attribute, type B")
	fs.StringVar(&f.opts.ExpiryAttribute, "expiry-attribute", "expires", "expiry attribute, type N, Unix seconds; the TTL attribute")
	fs.StringVar(&f.opts.KeyPrefix, "key-prefix", "", "prefix of this application's keys")
	fs.StringVar(&f.opts.OwnerAttribute, "owner-attribute", "owner", "owner attribute, type S; the owner index's partition key")
	fs.StringVar(&f.opts.OwnerIndex, "owner-index", "owner-index", "global secondary index on the owner attribute")
	fs.StringVar(&f.endpoint, "endpoint", "", "DynamoDB endpoint `URL`, such as http://127.0.0.1:8000 for DynamoDB Local")
	fs.StringVar(&f.region, "region", "", "AWS region (default: from the AWS configuration)")
	fs.StringVar(&f.profile, "profile", "", "AWS shared config profile")
	if name == "delete-expired" {
		fs.BoolVar(&f.dryRun, "dry-run", false, "count expired sessions without deleting them")
		fs.IntVar(&f.segments, "segments", 1, "parallel Scan segments, each with 8 deletes in flight")
		fs.Float64Var(&f.readRate, "read-rate", 0, "cap on read capacity `units` per second for the Scan; 0 for none")
		fs.DurationVar(&f.opts.SweepGrace, "grace", time.Minute, "delete only sessions expired at least this long, to allow for clock skew between instances")
	}
	if name == "sessions" || name == "revoke" {
		fs.StringVar(&f.owner, "owner", "", "the owner `ID`, as Options.Owner returns it (required)")
	}
	if name == "sessions" {
		fs.BoolVar(&f.showTokens, "show-tokens", false, "also print the tokens, as the store holds them (without the key prefix), one per line; unless the application uses scs's HashTokenInStore, a token is the session's cookie")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: dynamostore %s [flags]\n\nFlags:\n", name)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dynamostore %s: unexpected argument %q\n", name, fs.Arg(0))
		return nil, errors.New("unexpected argument")
	}
	if (name == "sessions" || name == "revoke") && f.owner == "" {
		fmt.Fprintf(stderr, "dynamostore %s: --owner is required\n", name)
		return nil, errors.New("missing --owner")
	}
	return f, nil
}

// options returns the store options the flags describe.
func (f *flags) options(o *dynamostore.Options) {
	o.TableName = f.opts.TableName
	o.KeyAttribute = f.opts.KeyAttribute
	o.DataAttribute = f.opts.DataAttribute
	o.ExpiryAttribute = f.opts.ExpiryAttribute
	o.KeyPrefix = f.opts.KeyPrefix
	o.OwnerAttribute = f.opts.OwnerAttribute
	o.OwnerIndex = f.opts.OwnerIndex
	o.SweepSegments = f.segments
	o.SweepReadRate = f.readRate
	o.SweepGrace = f.opts.SweepGrace // set by delete-expired's --grace; only sweeps use it
}

// client builds a DynamoDB client from the AWS configuration chain and the
// flags that override it.
func (f *flags) client(ctx context.Context) (*dynamodb.Client, error) {
	var loads []func(*config.LoadOptions) error
	if f.region != "" {
		loads = append(loads, config.WithRegion(f.region))
	}
	if f.profile != "" {
		loads = append(loads, config.WithSharedConfigProfile(f.profile))
	}
	// A sweep keeps 8 deletes per segment in flight; the SDK's default
	// transport keeps only 10 idle connections per host, so more segments
	// would open and close connections all the time.
	loads = append(loads, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
	})))
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: pass --region or set AWS_REGION")
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if f.endpoint != "" {
			o.BaseEndpoint = aws.String(f.endpoint)
			// DynamoDB Local's error responses carry a CRC32 header that
			// does not match, and the SDK warns about it on stderr.
			o.DisableValidateResponseChecksum = true
		}
	}), nil
}

func createTable(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	if err := dynamostore.CreateTable(ctx, client, f.options); err != nil {
		return err
	}
	// CreateTable returns nil on endpoints without the TTL API (dynalite,
	// for one), so say what the table really has.
	ttl := "TTL on " + f.opts.ExpiryAttribute
	d, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &f.opts.TableName})
	if err != nil || d.TimeToLiveDescription == nil || d.TimeToLiveDescription.TimeToLiveStatus == types.TimeToLiveStatusDisabled {
		ttl = "TTL not enabled (this endpoint has no TTL API); only the sweeper deletes expired sessions"
	}
	fmt.Fprintf(out, "table %s is ready: partition key %s (S), index %s on %s, %s\n",
		f.opts.TableName, f.opts.KeyAttribute, f.opts.OwnerIndex, f.opts.OwnerAttribute, ttl)
	return nil
}

func check(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &f.opts.TableName})
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return fmt.Errorf("table %s does not exist; create it with 'dynamostore create-table'", f.opts.TableName)
	}
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
	want := fmt.Sprintf("HASH %s (S)", f.opts.KeyAttribute)
	if len(keys) != 1 || keys[0] != want {
		problems = append(problems, fmt.Sprintf("key schema is %s, want %s only", strings.Join(keys, ", "), want))
	}
	idx := findIndex(t, f.opts.OwnerIndex)
	switch {
	case idx == nil:
		// Only DeleteOwner and OwnerTokens need it.
		fmt.Fprintf(out, "owner index: %s missing; revoke, sessions and DeleteOwner need it: add it with 'dynamostore create-table', which keeps the table and its sessions\n", f.opts.OwnerIndex)
	case len(idx.KeySchema) != 1 || aws.ToString(idx.KeySchema[0].AttributeName) != f.opts.OwnerAttribute:
		fmt.Fprintf(out, "owner index: %s, %s\n", f.opts.OwnerIndex, idx.IndexStatus)
		problems = append(problems, fmt.Sprintf("index %s is not keyed on %s alone", f.opts.OwnerIndex, f.opts.OwnerAttribute))
	default:
		fmt.Fprintf(out, "owner index: %s on %s, %s, projection %s\n", f.opts.OwnerIndex, f.opts.OwnerAttribute, idx.IndexStatus, idx.Projection.ProjectionType)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &f.opts.TableName})
	switch {
	case err != nil:
		fmt.Fprintf(out, "ttl: unknown (%v)\n", err)
		problems = append(problems, "TTL status cannot be read from this endpoint")
	case ttl.TimeToLiveDescription == nil || ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled:
		status := types.TimeToLiveStatusDisabled
		if ttl.TimeToLiveDescription != nil {
			status = ttl.TimeToLiveDescription.TimeToLiveStatus
		}
		fmt.Fprintf(out, "ttl: %s\n", status)
		problems = append(problems, fmt.Sprintf("TTL is %s, so only the sweeper deletes expired sessions; enable it on %s (dynamostore create-table does where the endpoint has the TTL API)", status, f.opts.ExpiryAttribute))
	default:
		attr := aws.ToString(ttl.TimeToLiveDescription.AttributeName)
		fmt.Fprintf(out, "ttl: ENABLED on %s\n", attr)
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

// findIndex returns the table's global secondary index name, or nil.
func findIndex(t *types.TableDescription, name string) *types.GlobalSecondaryIndexDescription {
	for i, g := range t.GlobalSecondaryIndexes {
		if aws.ToString(g.IndexName) == name {
			return &t.GlobalSecondaryIndexes[i]
		}
	}
	return nil
}

func sessions(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	tokens, err := dynamostore.NewWithCleanupInterval(client, 0, f.options).OwnerTokens(ctx, f.owner)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "live sessions: %d\n", len(tokens))
	if f.showTokens {
		for _, t := range tokens {
			fmt.Fprintln(out, t)
		}
	}
	return nil
}

func revoke(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	n, err := dynamostore.NewWithCleanupInterval(client, 0, f.options).DeleteOwner(ctx, f.owner)
	if err != nil {
		return fmt.Errorf("revoked %d sessions before: %w", n, err)
	}
	fmt.Fprintf(out, "revoked %d sessions\n", n)
	return nil
}

func deleteExpired(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	if f.dryRun {
		st, err := scanTable(ctx, client, f, time.Now().Add(-max(f.opts.SweepGrace, 0)))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "dry run: %d expired sessions would be deleted (%d items scanned in %s)\n",
			st.expired, st.scanned, time.Since(start).Round(time.Millisecond))
		return nil
	}
	counter := &countingClient{Client: client}
	store := dynamostore.NewWithCleanupInterval(counter, 0, f.options)
	if progressOut != nil {
		done := make(chan struct{})
		defer close(done)
		go counter.report(progressOut, start, done)
	}
	n, err := store.DeleteExpired(ctx)
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("deleted %d expired sessions before: %w", n, err)
	}
	fmt.Fprintf(out, "deleted %d expired sessions in %s (%.0f per second)\n", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return nil
}

func stats(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "full Scan of table %s: it reads, and is billed for, every item\n", f.opts.TableName)
	st, err := scanTable(ctx, client, f, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "items scanned: %d\nlive sessions: %d\nexpired sessions: %d\ncompressed sessions: %d\nencrypted sessions: %d\nunreadable items: %d\n",
		st.scanned, st.live, st.expired, st.compressed, st.sealed, st.corrupt)
	if len(st.sizes) == 0 {
		return nil
	}
	slices.Sort(st.sizes)
	pct := func(p int) int { return st.sizes[(len(st.sizes)-1)*p/100] }
	fmt.Fprintf(out, "session data bytes as stored: min %d, p50 %d, p90 %d, p99 %d, max %d\n",
		st.sizes[0], pct(50), pct(90), pct(99), st.sizes[len(st.sizes)-1])
	return nil
}

type tableStats struct {
	scanned, live, expired, corrupt int
	compressed, sealed              int
	sizes                           []int // data bytes of sessions, live and expired
}

// scanTable reads every item of the table under the key prefix. An item is
// expired at at by the store's rule (package sessionitem).
func scanTable(ctx context.Context, client *dynamodb.Client, f *flags, at time.Time) (tableStats, error) {
	var st tableStats
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: &f.opts.TableName})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return st, fmt.Errorf("scan table %s: %w", f.opts.TableName, err)
		}
		for _, item := range page.Items {
			key, ok := item[f.opts.KeyAttribute].(*types.AttributeValueMemberS)
			if !ok || !strings.HasPrefix(key.Value, f.opts.KeyPrefix) || strings.HasPrefix(key.Value[len(f.opts.KeyPrefix):], "#") {
				continue // another application's, or the sweeper's lease
			}
			st.scanned++
			// Sized as stored: compressed, sealed or plain, as the
			// attribute's name says; reading it needs no key.
			data, format, err := sessionitem.Data(item, f.opts.DataAttribute)
			if err != nil {
				st.corrupt++
				continue
			}
			expiry, err := sessionitem.ExpiryMillis(item, f.opts.ExpiryAttribute)
			if err != nil {
				st.corrupt++
				continue
			}
			if format.Compressed {
				st.compressed++
			}
			if format.Sealed {
				st.sealed++
			}
			st.sizes = append(st.sizes, len(data))
			if sessionitem.Expired(expiry, at) {
				st.expired++
			} else {
				st.live++
			}
		}
	}
	return st, nil
}

// countingClient counts the items a sweep scans and deletes, for the
// progress line.
type countingClient struct {
	dynamostore.Client
	scanned, deleted atomic.Int64
}

func (c *countingClient) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := c.Client.Scan(ctx, in, optFns...)
	if err == nil {
		c.scanned.Add(int64(out.ScannedCount))
	}
	return out, err
}

func (c *countingClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out, err := c.Client.DeleteItem(ctx, in, optFns...)
	if err == nil {
		c.deleted.Add(1)
	}
	return out, err
}

// report rewrites one progress line on w every half second until done.
func (c *countingClient) report(w io.Writer, start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			fmt.Fprintln(w)
			return
		case <-tick.C:
			deleted := c.deleted.Load()
			fmt.Fprintf(w, "\rscanned %d items, deleted %d (%.0f per second)  ",
				c.scanned.Load(), deleted, float64(deleted)/time.Since(start).Seconds())
		}
	}
}
