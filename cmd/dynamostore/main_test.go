package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

var endpoint string

// The test binary runs as the tool itself, in a process of its own, when
// a test sets mainEnv: "run" runs main with the arguments in argsEnv, one
// a line; "signals" waits on notifyContext, as main does, and then, as a
// run that does not stop would, forever.
const (
	mainEnv = "DYNAMOSTORE_TEST_MAIN"
	argsEnv = "DYNAMOSTORE_TEST_ARGS"
)

func TestMain(m *testing.M) {
	switch os.Getenv(mainEnv) {
	case "run":
		os.Args = append([]string{"dynamostore"}, strings.Split(os.Getenv(argsEnv), "\n")...)
		main()
		return
	case "signals":
		ctx, _ := notifyContext()
		fmt.Println("waiting")
		<-ctx.Done()
		fmt.Println("cancelled")
		select {}
	}
	// The tool reads credentials and region from the standard chain.
	os.Setenv("AWS_ACCESS_KEY_ID", "test")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	os.Setenv("AWS_REGION", "us-east-1")
	os.Exit(ddblocal.Run(m, &endpoint))
}

var tableSeq atomic.Int64

func tableName(t *testing.T) string {
	return fmt.Sprintf("cmd%d-%s", tableSeq.Add(1), strings.ReplaceAll(t.Name(), "/", "."))
}

// dynamostoreCmd runs the tool with args against the test endpoint.
func dynamostoreCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && args[0] != "help" {
		args = append(args, "--endpoint", endpoint)
	}
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func client() *dynamodb.Client {
	return ddblocal.NewClient(endpoint)
}

// newAEAD returns a tink AES-256-GCM AEAD with a new key, as an
// application's Options.Encryption would be.
func newAEAD(t *testing.T) tink.AEAD {
	t.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	a, err := aead.New(h)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// createWithoutTTL makes a session table without TTL, so DynamoDB Local
// (which runs TTL itself) leaves expired items in place.
func createWithoutTTL(t *testing.T, name string) {
	t.Helper()
	ddblocal.CreateTableWithoutTTL(t, client(), name, "session_key", types.ScalarAttributeTypeS)
}

func TestCreateTableAndCheck(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	code, out, errOut := dynamostoreCmd(t, "create-table", "--table", name, "--expiry-attribute", "ttl")
	if code != 0 || !strings.Contains(out, "table "+name+" is ready") {
		t.Fatalf("got %d, %q, %q: expected the table created", code, out, errOut)
	}
	if ddblocal.IsDynalite() {
		// dynalite has no UpdateTimeToLive: create-table says so, and
		// check reports TTL off and fails.
		if !strings.Contains(out, "TTL not enabled") {
			t.Fatalf("got %q: expected TTL reported as not enabled", out)
		}
		code, out, errOut = dynamostoreCmd(t, "check", "--table", name, "--expiry-attribute", "ttl")
		if code != 1 || !strings.Contains(out, "ttl: DISABLED") || !strings.Contains(errOut, "TTL is DISABLED, so only the sweeper deletes expired sessions") {
			t.Fatalf("got %d, %q, %q: expected check to report TTL off", code, out, errOut)
		}
		return
	}
	if !strings.Contains(out, "TTL on ttl") {
		t.Fatalf("got %q: expected TTL reported on ttl", out)
	}
	code, out, errOut = dynamostoreCmd(t, "check", "--table", name, "--expiry-attribute", "ttl")
	if code != 0 {
		t.Fatalf("got %d, %q, %q: expected check to pass", code, out, errOut)
	}
	for _, want := range []string{"key schema: HASH session_key (S)", "billing mode: PAY_PER_REQUEST", "approximate item count: 0", "ttl: ENABLED on ttl",
		"sweeper: the store's background sweeper stands down", "replicas: none", "ok"} {
		if !strings.Contains(out, want) {
			t.Fatalf("got %q: expected %q", out, want)
		}
	}
	// The same table checked against other options fails plainly.
	code, _, errOut = dynamostoreCmd(t, "check", "--table", name)
	if code != 1 || !strings.Contains(errOut, "TTL is on ttl, want expires") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("got %d, %q: expected one line about the TTL attribute", code, errOut)
	}
	code, _, errOut = dynamostoreCmd(t, "check", "--table", name, "--key-attribute", "id", "--expiry-attribute", "ttl")
	if code != 1 || !strings.Contains(errOut, `want a partition key "id" of type S`) {
		t.Fatalf("got %d, %q: expected a key schema complaint", code, errOut)
	}
}

func TestCheckTTLOff(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	code, out, errOut := dynamostoreCmd(t, "check", "--table", name)
	if code != 1 || !strings.Contains(out, "ttl: DISABLED") || !strings.Contains(errOut, "TTL is DISABLED") {
		t.Fatalf("got %d, %q, %q: expected TTL off reported and a failure", code, out, errOut)
	}
	code, _, errOut = dynamostoreCmd(t, "check", "--table", "no-such-table")
	if code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("got %d, %q: expected a missing-table message", code, errOut)
	}
}

func TestDeleteExpiredAndStats(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	store := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name; o.KeyPrefix = "app:" })
	other := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name; o.KeyPrefix = "other:" })
	for i := range 7 {
		store.Commit(fmt.Sprintf("old-%d", i), bytes.Repeat([]byte{'x'}, 100), time.Now().Add(-time.Hour))
	}
	for i := range 3 {
		store.Commit(fmt.Sprintf("live-%d", i), bytes.Repeat([]byte{'x'}, 1000), time.Now().Add(time.Hour))
	}
	other.Commit("old", []byte("x"), time.Now().Add(-time.Hour))
	// Expired within the grace: counted expired by stats, apart, and left
	// by the sweep, as the sweep's summary says.
	store.Commit("just-ended", bytes.Repeat([]byte{'x'}, 100), time.Now().Add(-time.Second))
	code, out, errOut := dynamostoreCmd(t, "stats", "--table", name, "--key-prefix", "app:", "--grace", "30m")
	if code != 0 || !strings.Contains(out, "\nexpired sessions: 8\nexpired sessions past --grace 30m: 7 (what delete-expired --grace 30m deletes)\n") {
		t.Fatalf("got %d, %q, %q: expected 8 expired sessions, 7 of them past the grace", code, out, errOut)
	}
	code, out, _ = dynamostoreCmd(t, "delete-expired", "--table", name, "--key-prefix", "app:", "--dry-run", "--grace", "30m")
	if code != 0 || !regexp.MustCompile(`^would delete 7 expired sessions of 12 items scanned in \S+ \(\d+ per second\), each expired at least 30m ago \(--grace\)\n$`).MatchString(out) {
		t.Fatalf("got %d, %q: expected a dry-run count of the 7 past the grace, and the grace", code, out)
	}
	if err := store.Delete("just-ended"); err != nil { // a revocation in its place
		t.Fatal(err)
	}

	code, out, errOut = dynamostoreCmd(t, "stats", "--table", name, "--key-prefix", "app:")
	if code != 0 {
		t.Fatalf("got %d, %q: expected stats", code, errOut)
	}
	for _, want := range []string{"items scanned: 12", "live sessions: 3", "expired sessions: 7", "expired sessions past --grace 1m: 7 (what delete-expired --grace 1m deletes)\n",
		"revocations: 1", "not this store's sessions: 1", "min 100, p50 100, p90 1000, p99 1000, max 1000"} {
		if !strings.Contains(out, want) {
			t.Fatalf("got %q: expected %q", out, want)
		}
	}
	// The notice is no data: on stderr.
	if !strings.Contains(errOut, "full Scan") || strings.Contains(out, "full Scan") {
		t.Fatalf("got stdout %q, stderr %q: expected the notice on stderr alone", out, errOut)
	}
	code, out, _ = dynamostoreCmd(t, "delete-expired", "--table", name, "--key-prefix", "app:", "--dry-run")
	if code != 0 || !regexp.MustCompile(`^would delete 7 expired sessions of 12 items scanned in \S+ \(\d+ per second\), each expired at least 1m ago \(--grace\)\n$`).MatchString(out) {
		t.Fatalf("got %d, %q: expected a dry-run count", code, out)
	}
	code, out, _ = dynamostoreCmd(t, "delete-expired", "--table", name, "--key-prefix", "app:", "--segments", "3", "--read-rate", "1000")
	if code != 0 || !strings.Contains(out, "deleted 7 expired sessions") {
		t.Fatalf("got %d, %q: expected 7 deleted", code, out)
	}
	_, out, _ = dynamostoreCmd(t, "stats", "--table", name, "--key-prefix", "other:")
	if !strings.Contains(out, "live sessions: 0") || !strings.Contains(out, "expired sessions: 1") {
		t.Fatalf("got %q: expected the other prefix's expired session kept", out)
	}
}

func TestStatsCompressed(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	store := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name; o.CompressAbove = 1024 })
	store.Commit("big", bytes.Repeat([]byte("session "), 500), time.Now().Add(time.Hour))
	store.Commit("small", []byte("session"), time.Now().Add(time.Hour))
	code, out, errOut := dynamostoreCmd(t, "stats", "--table", name)
	if code != 0 {
		t.Fatalf("got %d, %q: expected stats", code, errOut)
	}
	for _, want := range []string{"live sessions: 2", "compressed sessions: 1", "unreadable sessions: 0"} {
		if !strings.Contains(out, want) {
			t.Fatalf("got %q: expected %q", out, want)
		}
	}
}

// TestStatsEncrypted: stats counts sealed sessions, and needs no key to.
func TestStatsEncrypted(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	a := newAEAD(t)
	sealed := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) {
		o.TableName = name
		o.CompressAbove = 1024
		o.Encryption = a
	})
	plain := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name })
	for _, err := range []error{
		sealed.Commit("big", bytes.Repeat([]byte("session "), 500), time.Now().Add(time.Hour)),
		sealed.Commit("small", []byte("session"), time.Now().Add(time.Hour)),
		plain.Commit("plain", []byte("session"), time.Now().Add(time.Hour)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := dynamostoreCmd(t, "stats", "--table", name)
	if code != 0 {
		t.Fatalf("got %d, %q: expected stats", code, errOut)
	}
	for _, want := range []string{"live sessions: 3", "compressed sessions: 1", "encrypted sessions: 2", "unreadable sessions: 0"} {
		if !strings.Contains(out, want) {
			t.Fatalf("got %q: expected %q", out, want)
		}
	}
}

// TestStatsExactExpiry checks that stats reads expiry as the store does, to
// the millisecond: a session whose exact expiry has passed is expired though
// its TTL second, rounded up, has not come.
func TestStatsExactExpiry(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	now := time.Now()
	for key, expiresMs := range map[string]int64{"ended": now.Add(-time.Second).UnixMilli(), "live": now.Add(time.Hour).UnixMilli()} {
		_, err := client().PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &name, Item: map[string]types.AttributeValue{
			"session_key": &types.AttributeValueMemberS{Value: key},
			"data":        &types.AttributeValueMemberB{Value: []byte("x")},
			"expires":     &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(time.Hour).Unix()+1, 10)},
			"expires_ms":  &types.AttributeValueMemberN{Value: strconv.FormatInt(expiresMs, 10)},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := dynamostoreCmd(t, "stats", "--table", name)
	if code != 0 || !strings.Contains(out, "live sessions: 1\n") || !strings.Contains(out, "expired sessions: 1\n") {
		t.Fatalf("got %d, %q, %q: expected one live and one expired session", code, out, errOut)
	}
	if b, found, err := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name }).Find("ended"); err != nil || found {
		t.Fatalf("got %q, %v, %v: expected the store to agree that it ended", b, found, err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args       []string
		code       int
		out, err   string // in stdout, in stderr
		oneLineErr bool
	}{
		{args: nil, code: 2, err: "usage: dynamostore SUBCOMMAND"},
		{args: []string{"--help"}, code: 0, out: "create-table"},
		{args: []string{"nope"}, code: 2, err: `unknown subcommand "nope"; run 'dynamostore --help'`, oneLineErr: true},
		{args: []string{"stats", "--help"}, code: 0, out: "-key-prefix"},
		{args: []string{"delete-expired", "--help"}, code: 0, out: "-dry-run"},
		{args: []string{"delete-expired", "-h"}, code: 0, out: "-read-rate"},
		{args: []string{"delete-expired", "--segments", "x"}, code: 2, err: "--segments x: want a whole number from 1 to", oneLineErr: true},
		{args: []string{"check", "--bogus"}, code: 2, err: "flag provided but not defined: --bogus; run 'dynamostore check --help'", oneLineErr: true},
		{args: []string{"delete-expired", "--segments", "0"}, code: 2, err: "--segments 0: want a whole number from 1 to", oneLineErr: true},
		{args: []string{"delete-expired", "--segments", "-3"}, code: 2, err: "--segments -3: want a whole number from 1 to", oneLineErr: true},
		{args: []string{"delete-expired", "--segments", "1000000"}, code: 2, err: "--segments 1000000: want a whole number from 1 to", oneLineErr: true},
		{args: []string{"delete-expired", "--read-rate", "-5"}, code: 2, err: "--read-rate -5: want a number of read units per second such as 100, or 0 for no cap", oneLineErr: true},
		{args: []string{"delete-expired", "--read-rate", "NaN"}, code: 2, err: "--read-rate NaN: want a number of read units per second such as 100, or 0 for no cap", oneLineErr: true},
		{args: []string{"delete-expired", "--grace", "-5m"}, code: 2, err: "--grace -5m: want a duration such as 90s or 5m, 0 or more", oneLineErr: true},
		{args: []string{"stats", "--key-prefix", "app"}, code: 2, err: "KeyPrefix \"app\" ends with a character a token may hold", oneLineErr: true},
		{args: []string{"stats", "--data-attribute", "expires"}, code: 2, err: "named twice", oneLineErr: true},
		{args: []string{"check", "--key-attribute", ""}, code: 2, err: "--key-attribute must not be empty", oneLineErr: true},
		{args: []string{"revoke"}, code: 2, err: "--owner is required; run 'dynamostore revoke --help'", oneLineErr: true},
		{args: []string{"stats", "extra"}, code: 2, err: `unexpected argument "extra"`, oneLineErr: true},
		{args: []string{"delete-expired", "--read-rate", "Inf"}, code: 2, err: "--read-rate Inf: want a number of read units per second such as 100, or 0 for no cap", oneLineErr: true},
		{args: []string{"delete-expired", "--read-rate", "-inf"}, code: 2, err: "--read-rate -inf: want a number", oneLineErr: true},
		{args: []string{"delete-expired", "--read-rate", "1e400"}, code: 2, err: "--read-rate 1e400: want a number", oneLineErr: true},
		{args: []string{"delete-expired", "--grace", "5"}, code: 2, err: "--grace 5: want a duration such as 90s or 5m, 0 or more; run 'dynamostore delete-expired --help'", oneLineErr: true},
		{args: []string{"revoke", "--owner", "u1", "--timeout", "soon"}, code: 2, err: "--timeout soon: want a duration such as 90s or 5m, 0 or more", oneLineErr: true},
		{args: []string{"check", "--timeout", ""}, code: 2, err: `--timeout "": want a duration`, oneLineErr: true},
		{args: []string{"check", "--grace", "1m"}, code: 2, err: "flag provided but not defined: --grace", oneLineErr: true},
		{args: []string{"check", "--endpoint", "not-a-url"}, code: 2, err: `--endpoint "not-a-url": want an http or https URL with a host, such as http://127.0.0.1:8000`, oneLineErr: true},
		{args: []string{"stats", "--endpoint", "127.0.0.1:8000"}, code: 2, err: `--endpoint "127.0.0.1:8000": want an http or https URL`, oneLineErr: true},
		{args: []string{"stats", "--endpoint", "ftp://127.0.0.1:8000"}, code: 2, err: `--endpoint "ftp://127.0.0.1:8000": want`, oneLineErr: true},
		{args: []string{"stats", "--endpoint", "http://"}, code: 2, err: `--endpoint "http://": want`, oneLineErr: true},
		{args: []string{"delete-expired", "--timeout"}, code: 2, err: "flag needs an argument: --timeout", oneLineErr: true},
		{args: []string{"delete-expired", "--dry-run=maybe"}, code: 2, err: "dynamostore delete-expired: --dry-run=maybe: want true or false, or the flag alone: --dry-run, or --dry-run=false; run 'dynamostore delete-expired --help'", oneLineErr: true},
		{args: []string{"delete-expired", "-force=2"}, code: 2, err: "--force=2: want true or false", oneLineErr: true},
		{args: []string{"sessions", "--owner", "u1", "--show-tokens="}, code: 2, err: `--show-tokens="": want true or false`, oneLineErr: true},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.out) || !strings.Contains(errOut.String(), c.err) {
			t.Fatalf("%v: got %d, stdout %q, stderr %q: expected %d, %q in stdout and %q in stderr", c.args, code, out.String(), errOut.String(), c.code, c.out, c.err)
		}
		if c.oneLineErr && strings.Count(errOut.String(), "\n") != 1 {
			t.Fatalf("%v: got %q: expected one line", c.args, errOut.String())
		}
	}
	// The largest --segments the machine takes is accepted.
	max := strconv.Itoa(sessionitem.MaxSweepSegments())
	if f, err := parseFlags("delete-expired", []string{"--segments", max}, io.Discard); err != nil || f.segments != sessionitem.MaxSweepSegments() {
		t.Fatalf("got %v: expected --segments %s accepted", err, max)
	}
}

// TestHelp: each subcommand's --help lists its flags with two dashes, as
// the README writes them, with what each takes and its default, --timeout
// among them; one dash or two are both accepted.
func TestHelp(t *testing.T) {
	t.Parallel()
	for name, timeout := range defaultTimeouts {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{name, "--help"}, &out, &errOut); code != 0 || errOut.Len() != 0 {
			t.Fatalf("%s: got %d, %q: expected help", name, code, errOut.String())
		}
		help := out.String()
		for _, want := range []string{"usage: dynamostore " + name + " [flags]\n", "\n  --table name\n", "\n  --key-prefix prefix\n", "\n  --endpoint URL\n",
			"\n  --timeout duration\n", "(default " + formatDuration(timeout) + ")\n"} {
			if !strings.Contains(help, want) {
				t.Fatalf("%s: got %q: expected %q", name, help, want)
			}
		}
		for i, line := range strings.Split(help, "\n") {
			if strings.HasPrefix(line, "  -") && !strings.HasPrefix(line, "  --") {
				t.Fatalf("%s: got flag line %q: expected two dashes", name, line)
			}
			// The argument's name is said once, on the flag's line: the
			// text below does not begin with it.
			if arg, ok := strings.CutPrefix(line, "    \t"); ok {
				flagLine := strings.Split(help, "\n")[i-1]
				if f := strings.Fields(flagLine); len(f) == 2 && strings.HasPrefix(arg, f[1]+":") {
					t.Fatalf("%s: got %q under %q: expected %q said once", name, line, flagLine, f[1])
				}
			}
		}
	}
	var out bytes.Buffer
	run(context.Background(), []string{"delete-expired", "-help"}, &out, io.Discard)
	for _, want := range []string{"\n  --dry-run\n", "\n  --segments 1 to ", "(default 1)", "\n  --read-rate units\n", "\n  --force\n", "\n  --grace duration\n", "(default 1m)", "(default 12h)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("got %q: expected %q", out.String(), want)
		}
	}
	if f, err := parseFlags("delete-expired", []string{"-grace", "90s", "--timeout", "5m"}, io.Discard); err != nil || f.opts.SweepGrace != 90*time.Second || f.timeout != 5*time.Minute {
		t.Fatalf("got %v: expected one dash or two accepted", err)
	}
	// Boolean flags alone, or with a value.
	for args, want := range map[string][2]bool{"--dry-run --force": {true, true}, "-dry-run=false --force=true": {false, true}, "": {false, false}} {
		if f, err := parseFlags("delete-expired", strings.Fields(args), io.Discard); err != nil || f.dryRun != want[0] || f.force != want[1] {
			t.Fatalf("%q: got %v: expected --dry-run %v, --force %v", args, err, want[0], want[1])
		}
	}
}

// toolProcess starts the test binary as the tool (mainEnv) and returns it
// with its stdout, which it writes to out.
func toolProcess(t *testing.T, mode string, out io.Writer, errOut io.Writer, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainEnv+"="+mode, argsEnv+"="+strings.Join(args, "\n"))
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd
}

// exited waits for cmd to end, failing the test if only a hang would make
// it take so long.
func exited(t *testing.T, cmd *exec.Cmd) *os.ProcessState {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return cmd.ProcessState
	case <-time.After(2 * time.Minute): // only a hang reaches it
		cmd.Process.Kill()
		<-done
		t.Fatalf("waited 2m for the process to end")
		return nil
	}
}

// TestSignals: SIGTERM, as SIGINT (Ctrl-C), stops a run, which prints what
// it had counted and that it was interrupted; the tool runs in a process
// of its own, so the signals are real.
func TestSignals(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	fillSweepTable(t, name, 10, 0, 0)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		p := newProxy(t)
		held := stallSecondPage(p)
		p.published()
		var out bytes.Buffer
		errOut := &signalWriter{wrote: make(chan struct{}, 1)}
		cmd := toolProcess(t, "run", &out, errOut, "stats", "--table", name, "--key-prefix", "app:", "--endpoint", p.url)
		select {
		case <-held: // the first page is counted; the second hangs
		case <-time.After(2 * time.Minute): // only a hang reaches it
			t.Fatalf("%v: waited 2m for the second page; stderr %q", sig, errOut.String())
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		state := exited(t, cmd)
		if state.ExitCode() != 1 || !strings.HasPrefix(out.String(), "stopped early: the counts of the 5 items scanned before it stopped\n") ||
			!strings.Contains(errOut.String(), "dynamostore stats: interrupted: ") {
			t.Fatalf("%v: got %v, %q, %q: expected exit 1, the counts so far and the interruption", sig, state, out.String(), errOut.String())
		}
	}
}

// TestSecondSignal: after a first SIGINT or SIGTERM has cancelled the run,
// a second ends the process at once, should the run not stop.
func TestSecondSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		out := &signalWriter{wrote: make(chan struct{}, 1)}
		cmd := toolProcess(t, "signals", out, io.Discard)
		for _, line := range []string{"waiting\n", "waiting\ncancelled\n"} {
			hang := time.After(2 * time.Minute) // only a hang reaches it
			for out.String() != line {
				select {
				case <-out.wrote:
				case <-hang:
					t.Fatalf("%v: waited 2m for %q; got %q", sig, line, out.String())
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
		}
		state := exited(t, cmd)
		if ws, ok := state.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
			t.Fatalf("%v: got %v: expected the second signal to end the process", sig, state)
		}
	}
}

// TestVersion: --version and version print the module version, "(devel)"
// in a build from a clone such as the test's, and the Go version.
func TestVersion(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--version", "-version", "version"} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{arg}, &out, &errOut)
		if code != 0 || !strings.HasPrefix(out.String(), "dynamostore (devel)") || !strings.Contains(out.String(), ", "+runtime.Version()+" ") || errOut.Len() != 0 {
			t.Fatalf("%s: got %d, %q, %q: expected the version", arg, code, out.String(), errOut.String())
		}
	}
}

// TestMissingTable: every subcommand that needs the table says the same
// thing when it is missing, once, without a doubled prefix, and the
// create-table it suggests keeps the names create-table reads and where
// the table is: the flags given that are not the defaults.
func TestMissingTable(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"check"}, {"stats"}, {"delete-expired"}, {"delete-expired", "--dry-run"}, {"sessions", "--owner", "u1"}, {"revoke", "--owner", "u1"},
	} {
		code, out, errOut := dynamostoreCmd(t, append(args, "--table", "no-such-table")...)
		want := fmt.Sprintf("dynamostore %s: table no-such-table does not exist; create it with 'dynamostore create-table --table no-such-table --endpoint %s'\n", args[0], endpoint)
		if code != 1 || errOut != want || out != "" {
			t.Fatalf("%v: got %d, %q, %q: expected %q alone", args, code, out, errOut, want)
		}
		// create-table's names, but for the defaults, and the region; not
		// the names it does not read (--data-attribute, --key-prefix).
		code, out, errOut = dynamostoreCmd(t, append(args, "--table", "no-such-table", "--key-attribute", "id", "--expiry-attribute", "ttl",
			"--owner-attribute", "user", "--owner-index", "by-user", "--data-attribute", "d", "--key-prefix", "app:", "--region", "us-east-1")...)
		want = fmt.Sprintf("dynamostore %s: table no-such-table does not exist; create it with 'dynamostore create-table --table no-such-table --key-attribute id --expiry-attribute ttl --owner-attribute user --owner-index by-user --endpoint %s --region us-east-1'\n", args[0], endpoint)
		if code != 1 || errOut != want || out != "" {
			t.Fatalf("%v: got %d, %q, %q: expected %q alone", args, code, out, errOut, want)
		}
	}
	// A name a shell would split is quoted.
	var errOut bytes.Buffer
	run(context.Background(), []string{"check", "--table", "no-such-table", "--owner-index", "by user", "--endpoint", endpoint}, io.Discard, &errOut)
	if want := `create it with 'dynamostore create-table --table no-such-table --owner-index "by user" --endpoint `; !strings.Contains(errOut.String(), want) {
		t.Fatalf("got %q: expected %q", errOut.String(), want)
	}
}

// TestKeyAttributeChecked: a mistyped --key-attribute fails before a Scan
// would find nothing and report an empty table.
func TestKeyAttributeChecked(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	for _, args := range [][]string{{"stats"}, {"delete-expired"}, {"delete-expired", "--dry-run"}, {"check"}} {
		code, out, errOut := dynamostoreCmd(t, append(args, "--table", name, "--key-attribute", "sesion_key")...)
		if code != 1 || !strings.Contains(errOut, `the table's key is hash "session_key" (S); want a partition key "sesion_key" of type S`) || strings.Contains(out, "scanned") {
			t.Fatalf("%v: got %d, %q, %q: expected the key schema named and no scan", args, code, out, errOut)
		}
	}
	// create-table says the same through the library's error, prefixed once.
	code, _, errOut := dynamostoreCmd(t, "create-table", "--table", name, "--key-attribute", "sesion_key")
	want := fmt.Sprintf("dynamostore create-table: create table %q: it exists with another key schema: the table's key is hash \"session_key\" (S)", name)
	if code != 1 || !strings.HasPrefix(errOut, want) || strings.Contains(errOut, "dynamostore: ") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("got %d, %q: expected one line beginning %q", code, errOut, want)
	}
}

// TestNoCredentials: without credentials, against a local endpoint, the
// tool says how to give DynamoDB Local some, in one line, with no warning
// from the SDK about instance metadata. Not parallel: it changes the
// environment.
func TestNoCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	code, _, errOut := dynamostoreCmd(t, "check", "--table", "any")
	if code != 1 || !strings.Contains(errOut, "no AWS credentials found") || !strings.Contains(errOut, "DynamoDB Local accepts any") ||
		strings.Count(errOut, "\n") != 1 {
		t.Fatalf("got %d, %q: expected one line with a hint about credentials", code, errOut)
	}
}

// TestEndpointFromEnvironment: DynamoDB Local given by
// AWS_ENDPOINT_URL_DYNAMODB rather than --endpoint gets the same treatment,
// so the SDK's checksum warning stays off stderr. Not parallel: it changes
// the environment.
func TestEndpointFromEnvironment(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"check", "--table", "no-such-table"}, &out, &errOut)
	if code != 1 || strings.Contains(errOut.String(), "checksum") || !strings.Contains(errOut.String(), "does not exist") || strings.Count(errOut.String(), "\n") != 1 {
		t.Fatalf("got %d, %q: expected the missing table in one line and no checksum warning", code, errOut.String())
	}
}

func TestSessionsAndRevoke(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	if code, out, errOut := dynamostoreCmd(t, "create-table", "--table", name); code != 0 || !strings.Contains(out, "index owner-index on owner") {
		t.Fatalf("got %d, %q, %q: expected the table created with its owner index", code, out, errOut)
	}
	t.Cleanup(func() { client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	code, out, _ := dynamostoreCmd(t, "check", "--table", name)
	if !strings.Contains(out, "owner index: owner-index on owner, ACTIVE, projection KEYS_ONLY") {
		t.Fatalf("got %d, %q: expected the owner index reported", code, out)
	}
	store := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) {
		o.TableName = name
		o.KeyPrefix = "app:"
		o.Owner = func(b []byte) (string, bool) { return string(b), len(b) > 0 }
	})
	for token, owner := range map[string]string{"t1": "user 1", "t2": "user 1", "t3": "user 2"} {
		if err := store.Commit(token, []byte(owner), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// The owner index is eventually consistent: wait until it has both.
	hang := time.Now().Add(2 * time.Minute)
	for {
		code, out, errOut := dynamostoreCmd(t, "sessions", "--table", name, "--key-prefix", "app:", "--owner", "user 1")
		if code != 0 {
			t.Fatalf("got %d, %q, %q: expected a count", code, out, errOut)
		}
		if counts(out) == "live sessions: 2\nexpired sessions: 0\n" {
			break
		}
		if time.Now().After(hang) {
			t.Fatalf("got %q: expected 2 live sessions", out)
		}
		time.Sleep(10 * time.Millisecond) // a poll, not a wait for the event
	}
	code, out, _ = dynamostoreCmd(t, "sessions", "--table", name, "--key-prefix", "app:", "--owner", "user 1", "--show-tokens")
	if rows := sessionRows(t, out); code != 0 || len(rows) != 2 || !slices.Contains([]string{"t1 t2", "t2 t1"}, rows[0]["TOKEN"]+" "+rows[1]["TOKEN"]) {
		t.Fatalf("got %d, %q: expected the count and the tokens", code, out)
	}
	code, out, errOut := dynamostoreCmd(t, "revoke", "--table", name, "--key-prefix", "app:", "--owner", "user 1")
	if code != 0 || out != "revoked 2 sessions: 2 live, 0 expired\n" {
		t.Fatalf("got %d, %q, %q: expected 2 sessions revoked", code, out, errOut)
	}
	if _, found, err := store.Find("t3"); !found || err != nil {
		t.Fatalf("got %v, %v: expected the other owner's session kept", found, err)
	}
	if code, out, _ = dynamostoreCmd(t, "sessions", "--table", name, "--key-prefix", "app:", "--owner", "user 1"); code != 0 || out != "live sessions: 0\nexpired sessions: 0\n" {
		t.Fatalf("got %d, %q: expected none left", code, out)
	}

	// --owner is required, and said so in one line.
	for _, cmd := range []string{"sessions", "revoke"} {
		code, out, errOut := dynamostoreCmd(t, cmd, "--table", name)
		if code != 2 || out != "" || errOut != "dynamostore "+cmd+": --owner is required; run 'dynamostore "+cmd+" --help'\n" {
			t.Fatalf("got %d, %q, %q: expected a one-line usage error", code, out, errOut)
		}
	}
}

func TestOwnerIndexMissing(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	_, out, _ := dynamostoreCmd(t, "check", "--table", name, "--owner-attribute", "user")
	if want := fmt.Sprintf("owner index: owner-index missing; revoke, sessions and DeleteOwner need it: add it with 'dynamostore create-table --table %s --owner-attribute user --endpoint %s', which keeps", name, endpoint); !strings.Contains(out, want) {
		t.Fatalf("got %q: expected the missing index reported, with how to add it: %q", out, want)
	}
	code, out, errOut := dynamostoreCmd(t, "revoke", "--table", name, "--owner", "u1", "--expiry-attribute", "ttl")
	if code != 1 || out != "" || !strings.Contains(errOut, fmt.Sprintf(`has no index "owner-index" (it has no global secondary index); add it with 'dynamostore create-table --table %s --expiry-attribute ttl --endpoint %s'`, name, endpoint)) ||
		strings.Count(errOut, "\n") != 1 {
		t.Fatalf("got %d, %q, %q: expected one line about the missing index, with how to add it", code, out, errOut)
	}
}

// TestCheckOwnerIndexName: check of a table whose owner index has another
// name than --owner-index names the indexes it has; when one is keyed on
// --owner-attribute, --owner-index is likely mistyped: a problem, exit 1.
func TestCheckOwnerIndexName(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	ddblocal.Setup(t, "CreateTable "+name, func(ctx context.Context) error {
		return dynamostore.CreateTable(ctx, client(), func(o *dynamostore.Options) {
			o.TableName = name
			o.Logger = slog.New(slog.DiscardHandler) // dynalite has no TTL API
		})
	})
	t.Cleanup(func() { client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	code, out, errOut := dynamostoreCmd(t, "check", "--table", name, "--owner-index", "oi")
	problem := fmt.Sprintf(`table %s has no index "oi", but its index owner-index is keyed on owner; is --owner-index right?`, name)
	if code != 1 || !strings.Contains(out, "owner index: oi missing; the table's indexes: owner-index on owner\n") || !strings.Contains(errOut, problem) ||
		strings.Count(errOut, "\n") != 1 || strings.Contains(out, "\nok\n") {
		t.Fatalf("got %d, %q, %q: expected the indexes named and one line with %q", code, out, errOut, problem)
	}
	// No index on --owner-attribute: the indexes named, and the advice.
	code, out, errOut = dynamostoreCmd(t, "check", "--table", name, "--owner-index", "oi", "--owner-attribute", "user")
	if !strings.Contains(out, "owner index: oi missing; the table's indexes: owner-index on owner\n") ||
		!strings.Contains(out, "need one on user: is --owner-index or --owner-attribute wrong? If not, add it with 'dynamostore create-table --table "+name+" --owner-attribute user --owner-index oi") ||
		strings.Contains(errOut, "--owner-index right?") {
		t.Fatalf("got %d, %q, %q: expected the indexes named and advice, no owner index problem", code, out, errOut)
	}
	// The right name: no problem with the index.
	if code, out, errOut = dynamostoreCmd(t, "check", "--table", name); strings.Contains(errOut, "index") || !strings.Contains(out, "owner index: owner-index on owner, ACTIVE") {
		t.Fatalf("got %d, %q, %q: expected the owner index found", code, out, errOut)
	}
}

// TestReplicaReport: check describes a global table's replicas and warns
// of what each consistency mode changes. DynamoDB Local and dynalite have no
// global tables, so the descriptions are built here as DescribeTable
// returns them.
func TestReplicaReport(t *testing.T) {
	replicas := []types.ReplicaDescription{
		{RegionName: aws.String("eu-west-1"), ReplicaStatus: types.ReplicaStatusActive},
		{RegionName: aws.String("us-east-1"), ReplicaStatus: types.ReplicaStatusActive},
	}
	for _, tc := range []struct {
		mode types.MultiRegionConsistency
		want []string
	}{
		{"", []string{"replicas: eu-west-1 (ACTIVE), us-east-1 (ACTIVE); multi-region consistency EVENTUAL", "sweeper lease is per region", "SweepGrace at least the replication lag"}},
		{types.MultiRegionConsistencyStrong, []string{"multi-region consistency STRONG", "TTL does not work"}},
	} {
		got := strings.Join(replicaReport(&types.TableDescription{Replicas: replicas, MultiRegionConsistency: tc.mode}), "\n")
		for _, want := range tc.want {
			if !strings.Contains(got, want) {
				t.Errorf("mode %q: got %q: expected %q", tc.mode, got, want)
			}
		}
	}
	if got := replicaReport(&types.TableDescription{}); len(got) != 1 || got[0] != "replicas: none (a table in one region)" {
		t.Errorf("got %q: expected no replicas", got)
	}
}

// TestSessionsEncrypted: the tool, which holds no key, counts an owner's
// sealed sessions by their shape and expiry, as stats does, and as revoke
// revokes them.
func TestSessionsEncrypted(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	if code, out, errOut := dynamostoreCmd(t, "create-table", "--table", name); code != 0 {
		t.Fatalf("got %d, %q, %q", code, out, errOut)
	}
	t.Cleanup(func() { client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	a := newAEAD(t)
	store := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) {
		o.TableName = name
		o.Encryption = a
		o.Owner = func(b []byte) (string, bool) { return string(b), len(b) > 0 }
	})
	for _, token := range []string{"t1", "t2"} {
		if err := store.Commit(token, []byte("user1"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the index (eventually consistent) through the library itself.
	hang := time.Now().Add(2 * time.Minute)
	for {
		tokens, err := store.OwnerTokens(context.Background(), "user1")
		if err != nil {
			t.Fatal(err)
		}
		if len(tokens) == 2 {
			break
		}
		if time.Now().After(hang) {
			t.Fatalf("got %v: expected 2 tokens from the store with the key", tokens)
		}
		time.Sleep(10 * time.Millisecond) // a poll, not a wait for the event
	}
	code, out, errOut := dynamostoreCmd(t, "sessions", "--table", name, "--owner", "user1")
	if code != 0 || counts(out) != "live sessions: 2\nexpired sessions: 0\n" || strings.Contains(errOut, "cannot be read") {
		t.Fatalf("got %d, %q, %q: expected the owner's 2 live sealed sessions counted without the key", code, out, errOut)
	}
	if code, out, errOut := dynamostoreCmd(t, "revoke", "--table", name, "--owner", "user1"); code != 0 || out != "revoked 2 sessions: 2 live, 0 expired\n" {
		t.Fatalf("got %d, %q, %q: expected both revoked", code, out, errOut)
	}
}
