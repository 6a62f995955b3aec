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
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// defaultTimeouts are each subcommand's --timeout: long enough for the work
// on a large table (create-table waits while DynamoDB fills a new owner
// index, which takes hours on a large table; stats and delete-expired scan
// the whole table), short enough that a request nobody answers ends.
var defaultTimeouts = map[string]time.Duration{
	"create-table":   2 * time.Hour,
	"check":          time.Minute,
	"delete-expired": 12 * time.Hour,
	"stats":          12 * time.Hour,
	"sessions":       5 * time.Minute,
	"revoke":         30 * time.Minute,
}

// requestTimeout bounds each request to DynamoDB and the reading of its
// answer (timeoutClient), whatever --timeout says.
// One request (a Scan page of at most 1 MB, a conditional delete) takes well
// under a second; an endpoint that has not answered one in a minute is not
// answering, so a long run against it ends after the SDK's attempts (three)
// rather than at a --timeout of hours.
const requestTimeout = time.Minute

// maxScanTime is the longest a --read-rate may make delete-expired's scan
// last, by the table's approximate size, unless --force.
const maxScanTime = 24 * time.Hour

// flags are the command line's settings, common and per subcommand, and
// where the command writes notices and progress.
type flags struct {
	opts                      dynamostore.Options
	endpoint, region, profile string
	local                     bool // the endpoint is on this machine
	timeout                   time.Duration
	dryRun                    bool
	segments                  int
	readRate                  float64
	force                     bool
	owner                     string
	showTokens                bool
	session                   string        // revoke --session: the ID of one session
	keep                      int           // revoke --keep: how many sessions to keep, or -1
	requestTimeout            time.Duration // requestTimeout; tests make it shorter

	stderr   io.Writer
	progress *progress
}

func parseFlags(name string, args []string, stdout io.Writer) (*flags, error) {
	f := &flags{segments: 1, keep: -1, timeout: defaultTimeouts[name], requestTimeout: requestTimeout, opts: dynamostore.Options{SweepGrace: sessionitem.DefaultSweepGrace}}
	fs := flag.NewFlagSet("dynamostore "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by run
	var bad error            // the first value a typed flag refused
	fs.StringVar(&f.opts.TableName, "table", sessionitem.DefaultTableName, "DynamoDB table `name`")
	fs.StringVar(&f.opts.KeyAttribute, "key-attribute", sessionitem.DefaultKeyAttribute, "partition key `attribute`, type S")
	fs.StringVar(&f.opts.DataAttribute, "data-attribute", sessionitem.DefaultDataAttribute, "session data `attribute`, type B")
	fs.StringVar(&f.opts.ExpiryAttribute, "expiry-attribute", sessionitem.DefaultExpiryAttribute, "expiry `attribute`, type N, Unix seconds; the TTL attribute")
	fs.StringVar(&f.opts.KeyPrefix, "key-prefix", "", "`prefix` of this application's keys")
	fs.StringVar(&f.opts.OwnerAttribute, "owner-attribute", sessionitem.DefaultOwnerAttribute, "owner `attribute`, type S; the owner index's partition key")
	fs.StringVar(&f.opts.OwnerIndex, "owner-index", sessionitem.DefaultOwnerIndex, "global secondary `index` on the owner attribute")
	fs.StringVar(&f.endpoint, "endpoint", "", "DynamoDB endpoint `URL`, such as http://127.0.0.1:8000 for DynamoDB Local (default: from the AWS configuration, such as AWS_ENDPOINT_URL_DYNAMODB)")
	fs.StringVar(&f.region, "region", "", "AWS `region` (default: from the AWS configuration)")
	fs.StringVar(&f.profile, "profile", "", "AWS shared config `profile`")
	timeoutUse := "give up after this `duration`, such as 90s or 5m; 0 for never"
	if name == "create-table" {
		timeoutUse += "; it covers the wait while DynamoDB fills a new owner index, which on a large table takes hours"
	}
	fs.Var(durationFlag("timeout", &f.timeout, &bad), "timeout", timeoutUse)
	if name == "delete-expired" {
		fs.Var(boolFlag("dry-run", &f.dryRun, &bad), "dry-run", "the same sweep (Scan, segments, read cap, grace and rule) without its deletes: count what a real run would delete")
		fs.Var(segmentsFlag(&f.segments, &bad), "segments", fmt.Sprintf("parallel Scan segments, each with 8 deletes in flight: `1 to %d` on this machine", sessionitem.MaxSweepSegments()))
		fs.Var(readRateFlag(&f.readRate, &bad), "read-rate", "cap on read capacity `units` per second for the Scan; 0 for none")
		fs.Var(boolFlag("force", &f.force, &bad), "force", "run even when --read-rate makes the scan of the table, by its approximate size, take longer than a day")
		fs.Var(durationFlag("grace", &f.opts.SweepGrace, &bad), "grace", "delete only sessions that expired at least this `duration` ago, to allow for clock skew between instances")
	}
	if name == "stats" {
		fs.Var(durationFlag("grace", &f.opts.SweepGrace, &bad), "grace", "count apart the expired sessions that expired at least this `duration` ago, which delete-expired with the same --grace deletes")
	}
	if name == "sessions" || name == "revoke" {
		fs.StringVar(&f.owner, "owner", "", "the owner `ID`, as Options.Owner returns it (required)")
	}
	if name == "sessions" {
		fs.Var(boolFlag("show-tokens", &f.showTokens, &bad), "show-tokens", "also print each live session's token, as the store holds it (without the key prefix); unless the application uses scs's HashTokenInStore, a token is the session's cookie")
	}
	if name == "revoke" {
		fs.StringVar(&f.session, "session", "", "revoke only the owner's session with this `ID`, as 'dynamostore sessions' lists it")
		fs.Var(keepFlag(&f.keep, &bad), "keep", "keep the owner's `N` most recently written live sessions and revoke the other live ones")
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: dynamostore %s [flags]\n\nFlags (one dash or two):\n", name)
		printFlags(stdout, fs)
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	if err != nil {
		// The flag package names flags with one dash; the tool's help and
		// the README write two.
		return nil, errors.New(strings.Replace(err.Error(), ": -", ": --", 1))
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
	if (name == "sessions" || name == "revoke") && f.owner == "" {
		return nil, errors.New("--owner is required")
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if given["session"] && given["keep"] {
		return nil, errors.New("--session and --keep: give one, --session to revoke one session, --keep to keep the N most recent")
	}
	if given["session"] && f.session == "" {
		// Else it would be revoke without --session: every session.
		return nil, errors.New("--session is empty: give the ID of the session to revoke, as 'dynamostore sessions' lists it, or leave --session out to revoke every session of the owner")
	}
	if f.owner != "" {
		// The library stores such an owner as none: the index never lists
		// it, and 0 sessions would look like an answer.
		if err := sessionitem.CheckOwner(f.owner); err != nil {
			return nil, fmt.Errorf("--owner: %v: the store never indexes such an owner (it stores the session as one without an owner), so there is nothing to find", err)
		}
	}
	if err := checkEndpoint(f.endpoint); err != nil {
		return nil, err
	}
	// The library's own check of its options, before any request.
	if err := dynamostore.CheckOptions(f.names); err != nil {
		return nil, fmt.Errorf("%w (--key-prefix and the --*-attribute flags set these options)", err)
	}
	return f, nil
}

// checkEndpoint refuses an --endpoint that is no http or https URL with a
// host, before any request: the SDK would retry it, and fail, as a network
// error.
func checkEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("--endpoint %q: want an http or https URL with a host, such as http://127.0.0.1:8000 or https://dynamodb.eu-west-1.amazonaws.com", endpoint)
	}
	return nil
}

// printFlags lists the flags of fs as the README writes them, with two
// dashes; the flag package accepts one or two.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(fl *flag.Flag) {
		arg, use := flag.UnquoteUsage(fl)
		line := "  --" + fl.Name
		if arg != "" {
			line += " " + arg
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, use)
		switch fl.DefValue {
		case "", "0", "false":
		default:
			fmt.Fprintf(w, " (default %s)", fl.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// typedFlag is a flag whose value parse reads and checks. It says what it
// wants, with an example, where the flag package would say "parse error",
// and records the first refusal in bad for parseFlags to report as it is.
type typedFlag[T any] struct {
	name   string
	p      *T
	parse  func(string) (T, bool)
	want   string
	show   func(T) string
	bad    *error
	isBool bool // given alone (--dry-run) or with = (--dry-run=false)
}

// IsBoolFlag tells the flag package that a boolFlag may be given alone.
func (v *typedFlag[T]) IsBoolFlag() bool { return v != nil && v.isBool }

func (v *typedFlag[T]) String() string {
	if v == nil || v.p == nil { // the flag package's zero Value
		return ""
	}
	return v.show(*v.p)
}

func (v *typedFlag[T]) Set(s string) error {
	x, ok := v.parse(s)
	if !ok {
		shown := s
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			shown = strconv.Quote(s)
		}
		assign := " "
		if v.isBool {
			assign = "="
		}
		*v.bad = fmt.Errorf("--%s%s%s: want %s", v.name, assign, shown, v.want)
		return *v.bad
	}
	*v.p = x
	return nil
}

// boolFlag is a flag that is on when given alone (--dry-run), or given
// true or false (--dry-run=false), as the flag package's bool flags.
func boolFlag(name string, p *bool, bad *error) flag.Value {
	return &typedFlag[bool]{name: name, p: p, bad: bad, show: strconv.FormatBool, isBool: true,
		want: fmt.Sprintf("true or false, or the flag alone: --%s, or --%s=false", name, name),
		parse: func(s string) (bool, bool) {
			b, err := strconv.ParseBool(s)
			return b, err == nil
		}}
}

// durationFlag is a flag of 0 or more, such as 90s or 5m.
func durationFlag(name string, p *time.Duration, bad *error) flag.Value {
	return &typedFlag[time.Duration]{name: name, p: p, bad: bad, show: formatDuration,
		want: "a duration such as 90s or 5m, 0 or more",
		parse: func(s string) (time.Duration, bool) {
			d, err := time.ParseDuration(s)
			return d, err == nil && d >= 0
		}}
}

// segmentsFlag is --segments: 1 to sessionitem.MaxSweepSegments.
func segmentsFlag(p *int, bad *error) flag.Value {
	return &typedFlag[int]{name: "segments", p: p, bad: bad, show: strconv.Itoa,
		want: fmt.Sprintf("a whole number from 1 to %d (16 per CPU on this machine; each segment keeps 8 deletes in flight)", sessionitem.MaxSweepSegments()),
		parse: func(s string) (int, bool) {
			n, err := strconv.Atoi(s)
			return n, err == nil && n >= 1 && n <= sessionitem.MaxSweepSegments()
		}}
}

// readRateFlag is --read-rate: a finite number of read units per second, 0
// for no cap. NaN and the infinities are refused: NaN would mean no cap.
func readRateFlag(p *float64, bad *error) flag.Value {
	return &typedFlag[float64]{name: "read-rate", p: p, bad: bad,
		show: func(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) },
		want: "a number of read units per second such as 100, or 0 for no cap",
		parse: func(s string) (float64, bool) {
			r, err := strconv.ParseFloat(s, 64)
			return r, err == nil && !math.IsNaN(r) && !math.IsInf(r, 0) && r >= 0
		}}
}

// keepFlag is revoke's --keep: a whole number, 0 or more.
func keepFlag(p *int, bad *error) flag.Value {
	return &typedFlag[int]{name: "keep", p: p, bad: bad,
		show: func(n int) string {
			if n < 0 {
				return "" // not given: no default shown
			}
			return strconv.Itoa(n)
		},
		want: "a whole number of sessions to keep, 0 or more, such as 3",
		parse: func(s string) (int, bool) {
			n, err := strconv.Atoi(s)
			return n, err == nil && n >= 0
		}}
}

// formatDuration writes d as it would be typed: 1m rather than 1m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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

// command returns the command line of sub, create-table or check, for the
// same table as this run's: with --table, each of the names they read
// (--key-attribute, --expiry-attribute, --owner-attribute, --owner-index)
// that is not the default, and --endpoint, --region and --profile when
// given, so that a suggested command acts on what this one did.
func (f *flags) command(sub string) string {
	args := []string{"dynamostore", sub, "--table", shellWord(f.opts.TableName)}
	for _, n := range []struct{ flag, value, def string }{
		{"key-attribute", f.opts.KeyAttribute, sessionitem.DefaultKeyAttribute},
		{"expiry-attribute", f.opts.ExpiryAttribute, sessionitem.DefaultExpiryAttribute},
		{"owner-attribute", f.opts.OwnerAttribute, sessionitem.DefaultOwnerAttribute},
		{"owner-index", f.opts.OwnerIndex, sessionitem.DefaultOwnerIndex},
		{"endpoint", f.endpoint, ""},
		{"region", f.region, ""},
		{"profile", f.profile, ""},
	} {
		if n.value != n.def {
			args = append(args, "--"+n.flag, shellWord(n.value))
		}
	}
	return strings.Join(args, " ")
}

// shellWord returns s as one word of a command line: as it is when it
// holds only characters no shell treats specially, and quoted otherwise.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/@%+=,") == "" {
		return s
	}
	return strconv.Quote(s)
}

// itemNames are the names by which sessionitem's rules read an item.
func (f *flags) itemNames() sessionitem.Names {
	return sessionitem.Names{Prefix: f.opts.KeyPrefix, Key: f.opts.KeyAttribute, Data: f.opts.DataAttribute, Expiry: f.opts.ExpiryAttribute}
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
	// The configuration needs the SDK's own client, to add AWS_CA_BUNDLE's
	// certificates; its timeout, a second beyond the limit on each request,
	// bounds the requests for credentials, and DynamoDB's end at the limit
	// itself (timeoutClient, below), which starts first.
	loads = append(loads, config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(f.requestTimeout+time.Second).WithTransportOptions(func(tr *http.Transport) {
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
	loads = append(loads, config.WithLogger(sdkLogger{logging.NewStandardLogger(f.stderr)}))
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: pass --region or set AWS_REGION (DynamoDB Local takes any)")
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.HTTPClient = &timeoutClient{client: o.HTTPClient, timeout: f.requestTimeout}
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

// errRequestTimeout is the cause of a request ended by the limit on each
// request, requestTimeout.
var errRequestTimeout = errors.New("no answer within the limit on each request")

// timeoutClient sends each request through client, and ends it, the
// reading of its answer included, after timeout; the error then wraps
// errRequestTimeout, so that the tool can say that its limit ended the run,
// not --timeout. The SDK retries it as the timeout it also wraps.
type timeoutClient struct {
	client  aws.HTTPClient
	timeout time.Duration
}

func (c *timeoutClient) Do(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeoutCause(r.Context(), c.timeout, errRequestTimeout)
	resp, err := c.client.Do(r.WithContext(ctx))
	if err != nil {
		cancel()
		return resp, requestTimeoutCause(ctx, err)
	}
	resp.Body = &timeoutBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}
	return resp, nil
}

// requestTimeoutCause returns err, wrapped with errRequestTimeout when the
// limit on the request ended ctx.
func requestTimeoutCause(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errRequestTimeout) && !errors.Is(err, errRequestTimeout) {
		return fmt.Errorf("%w: %w", errRequestTimeout, err)
	}
	return err
}

// timeoutBody is an answer's body read within its request's limit.
type timeoutBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
}

func (b *timeoutBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = requestTimeoutCause(b.ctx, err)
	}
	return n, err
}

func (b *timeoutBody) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}

// sdkLogger writes the SDK's warnings, but for the one that an answer's
// body could not be read to its end to keep the connection, which follows
// a request that failed or was cut off (reported as such) and tells the
// operator nothing.
type sdkLogger struct{ logging.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	if strings.HasPrefix(format, "failed to discard remaining HTTP response body") {
		return
	}
	l.Logger.Logf(c, format, v...)
}
