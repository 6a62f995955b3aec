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
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/logging"

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
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code: 0 on success, 1
// when the command failed or found a problem, 2 for a usage error. Data goes
// to stdout; errors, notices and progress to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
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
	name := args[0]
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "dynamostore: unknown subcommand %q; run 'dynamostore --help'\n", name)
		return 2
	}
	f, err := parseFlags(name, args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "dynamostore %s: %v; run 'dynamostore %s --help'\n", name, err, name)
		return 2
	}
	f.stderr = stderr
	f.progress = newProgress(stderr)
	if err := cmd(ctx, f, stdout); err != nil {
		f.progress.clear()
		fmt.Fprintf(stderr, "dynamostore %s: %s\n", name, f.explain(err))
		return 1
	}
	return 0
}

// flags are the command line's settings, common and per subcommand, and
// where the command writes notices and progress.
type flags struct {
	opts                      dynamostore.Options
	endpoint, region, profile string
	local                     bool // the endpoint is on this machine
	dryRun                    bool
	segments                  int
	readRate                  float64
	owner                     string
	showTokens                bool

	stderr   io.Writer
	progress *progress
}

func parseFlags(name string, args []string, stdout io.Writer) (*flags, error) {
	f := &flags{segments: 1}
	fs := flag.NewFlagSet("dynamostore "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by run
	fs.StringVar(&f.opts.TableName, "table", sessionitem.DefaultTableName, "DynamoDB table `name`")
	fs.StringVar(&f.opts.KeyAttribute, "key-attribute", sessionitem.DefaultKeyAttribute, "partition key attribute, type S")
	fs.StringVar(&f.opts.DataAttribute, "data-attribute", sessionitem.DefaultDataAttribute, "session data attribute, type B")
	fs.StringVar(&f.opts.ExpiryAttribute, "expiry-attribute", sessionitem.DefaultExpiryAttribute, "expiry attribute, type N, Unix seconds; the TTL attribute")
	fs.StringVar(&f.opts.KeyPrefix, "key-prefix", "", "prefix of this application's keys")
	fs.StringVar(&f.opts.OwnerAttribute, "owner-attribute", sessionitem.DefaultOwnerAttribute, "owner attribute, type S; the owner index's partition key")
	fs.StringVar(&f.opts.OwnerIndex, "owner-index", sessionitem.DefaultOwnerIndex, "global secondary index on the owner attribute")
	fs.StringVar(&f.endpoint, "endpoint", "", "DynamoDB endpoint `URL`, such as http://127.0.0.1:8000 for DynamoDB Local (default: from the AWS configuration, such as AWS_ENDPOINT_URL_DYNAMODB)")
	fs.StringVar(&f.region, "region", "", "AWS region (default: from the AWS configuration)")
	fs.StringVar(&f.profile, "profile", "", "AWS shared config profile")
	if name == "delete-expired" {
		fs.BoolVar(&f.dryRun, "dry-run", false, "count expired sessions without deleting them")
		fs.IntVar(&f.segments, "segments", 1, fmt.Sprintf("parallel Scan segments, each with 8 deletes in flight: 1 to %d on this machine", sessionitem.MaxSweepSegments()))
		fs.Float64Var(&f.readRate, "read-rate", 0, "cap on read capacity `units` per second for the Scan; 0 for none")
		fs.DurationVar(&f.opts.SweepGrace, "grace", sessionitem.DefaultSweepGrace, "delete only sessions expired at least this long, to allow for clock skew between instances")
	}
	if name == "sessions" || name == "revoke" {
		fs.StringVar(&f.owner, "owner", "", "the owner `ID`, as Options.Owner returns it (required)")
	}
	if name == "sessions" {
		fs.BoolVar(&f.showTokens, "show-tokens", false, "also print the tokens, as the store holds them (without the key prefix), one per line; unless the application uses scs's HashTokenInStore, a token is the session's cookie")
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: dynamostore %s [flags]\n\nFlags:\n", name)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, n := range []struct{ flag, value string }{
		{"table", f.opts.TableName}, {"key-attribute", f.opts.KeyAttribute}, {"data-attribute", f.opts.DataAttribute},
		{"expiry-attribute", f.opts.ExpiryAttribute}, {"owner-attribute", f.opts.OwnerAttribute}, {"owner-index", f.opts.OwnerIndex},
	} {
		if n.value == "" {
			return nil, fmt.Errorf("--%s must not be empty", n.flag)
		}
	}
	switch max := sessionitem.MaxSweepSegments(); {
	case f.segments < 1 || f.segments > max:
		return nil, fmt.Errorf("--segments %d: want 1 to %d (16 per CPU on this machine; each segment keeps 8 deletes in flight)", f.segments, max)
	case f.readRate < 0 || math.IsNaN(f.readRate) || math.IsInf(f.readRate, 0):
		return nil, fmt.Errorf("--read-rate %v: want 0 (no cap) or more", f.readRate)
	case f.opts.SweepGrace < 0:
		return nil, fmt.Errorf("--grace %v: want 0 or more", f.opts.SweepGrace)
	case (name == "sessions" || name == "revoke") && f.owner == "":
		return nil, errors.New("--owner is required")
	}
	// The library's own check of its options, before any request.
	if err := dynamostore.CheckOptions(f.names); err != nil {
		return nil, fmt.Errorf("%w (--key-prefix and the --*-attribute flags set these options)", err)
	}
	return f, nil
}

// names sets the names of the table and its attributes, and the key
// prefix, that the flags give.
func (f *flags) names(o *dynamostore.Options) {
	o.TableName = f.opts.TableName
	o.KeyAttribute = f.opts.KeyAttribute
	o.DataAttribute = f.opts.DataAttribute
	o.ExpiryAttribute = f.opts.ExpiryAttribute
	o.KeyPrefix = f.opts.KeyPrefix
	o.OwnerAttribute = f.opts.OwnerAttribute
	o.OwnerIndex = f.opts.OwnerIndex
}

// options returns the store options the flags describe.
func (f *flags) options(o *dynamostore.Options) {
	f.names(o)
	o.SweepSegments = f.segments
	o.SweepReadRate = f.readRate
	o.SweepGrace = f.opts.SweepGrace // set by delete-expired's --grace; only sweeps use it
	o.Logger = slog.New(slog.NewTextHandler(f.stderr, nil))
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
	// The endpoint the SDK will use, as far as the flag and the environment
	// tell it: --endpoint wins over both variables.
	if isLocal(cmp.Or(f.endpoint, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"), os.Getenv("AWS_ENDPOINT_URL"))) {
		// No instance metadata on a developer's machine: without
		// credentials, say so at once rather than after IMDS times out.
		loads = append(loads, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	// The SDK's own warnings go where the tool's notices go.
	loads = append(loads, config.WithLogger(logging.NewStandardLogger(f.stderr)))
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: pass --region or set AWS_REGION (DynamoDB Local takes any)")
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if f.endpoint != "" {
			o.BaseEndpoint = aws.String(f.endpoint)
		}
		f.local = isLocal(aws.ToString(o.BaseEndpoint))
		if f.local {
			// DynamoDB Local's error responses carry a CRC32 header that
			// does not match, and the SDK warns about it on stderr.
			o.DisableValidateResponseChecksum = true
		}
	}), nil
}

// isLocal reports whether endpoint is on this machine, as DynamoDB Local is.
func isLocal(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// explain returns the message for a command's error: one line, without the
// library's own "dynamostore: " prefix (run adds the subcommand's), the same
// for a missing table whichever command met it, and with a hint where the
// credentials are missing.
func (f *flags) explain(err error) string {
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return missingTable(f.opts.TableName)
	}
	msg := strings.TrimPrefix(err.Error(), "dynamostore: ")
	if strings.Contains(msg, "get credentials") || strings.Contains(msg, "get identity") {
		hint := "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
		if f.local {
			hint += " (DynamoDB Local accepts any, such as AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local)"
		}
		return hint
	}
	return msg
}

// missingTable is the message for a table that does not exist.
func missingTable(table string) string {
	return fmt.Sprintf("table %s does not exist; create it with 'dynamostore create-table --table %s'", table, table)
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
	if err != nil || !ttlOn(d.TimeToLiveDescription) {
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
	case idx == nil:
		// Only DeleteOwner and OwnerTokens need it.
		fmt.Fprintf(out, "owner index: %s missing; revoke, sessions and DeleteOwner need it: add it with 'dynamostore create-table', which keeps the table and its sessions\n", f.opts.OwnerIndex)
	case err != nil:
		fmt.Fprintf(out, "owner index: %s, %s\n", f.opts.OwnerIndex, idx.IndexStatus)
		problems = append(problems, err.Error())
	default:
		fmt.Fprintf(out, "owner index: %s on %s, %s, projection %s\n", f.opts.OwnerIndex, f.opts.OwnerAttribute, idx.IndexStatus, idx.Projection.ProjectionType)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &f.opts.TableName})
	switch {
	case err != nil:
		fmt.Fprintf(out, "ttl: unknown (%v)\n", err)
		problems = append(problems, "TTL status cannot be read from this endpoint")
	case !ttlOn(ttl.TimeToLiveDescription):
		status := types.TimeToLiveStatusDisabled
		if ttl.TimeToLiveDescription != nil {
			status = ttl.TimeToLiveDescription.TimeToLiveStatus
		}
		fmt.Fprintf(out, "ttl: %s\n", status)
		problems = append(problems, fmt.Sprintf("TTL is %s, so only the sweeper deletes expired sessions; enable it on %s (dynamostore create-table does where the endpoint has the TTL API)", status, f.opts.ExpiryAttribute))
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

// checkTable fails unless the table exists with the key schema the flags
// describe: a Scan keyed on another attribute would find nothing and say
// the table is empty.
func checkTable(ctx context.Context, client *dynamodb.Client, f *flags) error {
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &f.opts.TableName})
	if err != nil {
		return err
	}
	if err := sessionitem.CheckKeySchema(desc.Table, f.opts.KeyAttribute); err != nil {
		return fmt.Errorf("table %s: %w; is --key-attribute right?", f.opts.TableName, err)
	}
	return nil
}

func deleteExpired(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	if err := checkTable(ctx, client, f); err != nil {
		return err
	}
	start := time.Now()
	// A dry run is the real run, DeleteExpired itself, with a client that
	// answers each conditional delete as if it held without sending it: the
	// Scan's filter is the delete's condition, so it counts what a real run
	// would delete at that moment.
	counter := &countingClient{Client: client, dryRun: f.dryRun}
	store := dynamostore.NewWithCleanupInterval(counter, 0, f.options)
	verb := "deleted"
	if f.dryRun {
		verb = "would delete"
	}
	stop := f.progress.start(func() string {
		deleted := counter.deleted.Load()
		return fmt.Sprintf("delete-expired %s: scanned %d items, %s %d (%.0f per second)",
			f.opts.TableName, counter.scanned.Load(), verb, deleted, float64(deleted)/time.Since(start).Seconds())
	})
	n, err := store.DeleteExpired(ctx)
	stop()
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s %d expired sessions before: %w", verb, n, err)
	}
	if f.dryRun {
		fmt.Fprintf(out, "dry run: %d expired sessions would be deleted (%d items scanned in %s)\n",
			n, counter.scanned.Load(), elapsed.Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(out, "deleted %d expired sessions of %d items scanned in %s (%.0f per second)\n",
		n, counter.scanned.Load(), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	return nil
}

func stats(ctx context.Context, f *flags, out io.Writer) error {
	client, err := f.client(ctx)
	if err != nil {
		return err
	}
	if err := checkTable(ctx, client, f); err != nil {
		return err
	}
	fmt.Fprintf(f.stderr, "a full Scan of table %s: it reads, and is billed for, every item\n", f.opts.TableName)
	st, err := scanTable(ctx, client, f, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "items scanned: %d\nlive sessions: %d\nexpired sessions: %d\ncompressed sessions: %d\nencrypted sessions: %d\nunreadable sessions: %d\nrevocations: %d\nnot this store's sessions: %d\n",
		st.scanned, st.live, st.expired, st.compressed, st.sealed, st.corrupt, st.revocations, st.other)
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
	revocations, other              int
	compressed, sealed              int
	sizes                           []int // data bytes of sessions, live and expired
}

// scanTable reads every item of the table and counts, by the store's rules
// (package sessionitem), the sessions under the key prefix's fence, live or
// expired at at, the revocations, and every other item apart.
func scanTable(ctx context.Context, client *dynamodb.Client, f *flags, at time.Time) (tableStats, error) {
	var st tableStats
	var read atomic.Int64
	stop := f.progress.start(func() string {
		return fmt.Sprintf("scanning %s: %d items read", f.opts.TableName, read.Load())
	})
	defer stop()
	names := sessionitem.Names{Prefix: f.opts.KeyPrefix, Key: f.opts.KeyAttribute, Data: f.opts.DataAttribute, Expiry: f.opts.ExpiryAttribute}
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
				continue
			case sessionitem.Revocation:
				st.revocations++ // what a Delete leaves: no session
				continue
			}
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
			if format.Compressed && !format.Sealed {
				// The store would refuse it; sealed data needs the key.
				if _, err := sessionitem.Decompress(data); err != nil {
					st.corrupt++
					continue
				}
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
// progress line; with dryRun, it sends no DeleteItem and answers each as if
// its condition held.
type countingClient struct {
	dynamostore.Client
	dryRun           bool
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
	if c.dryRun {
		c.deleted.Add(1)
		return &dynamodb.DeleteItemOutput{}, nil
	}
	out, err := c.Client.DeleteItem(ctx, in, optFns...)
	if err == nil {
		c.deleted.Add(1)
	}
	return out, err
}
