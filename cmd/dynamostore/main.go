// Command dynamostore manages the DynamoDB table of a dynamostore session
// store: it creates and checks the table, deletes expired sessions, and
// reports what the table holds.
//
// Usage:
//
//	dynamostore SUBCOMMAND [flags]
//	dynamostore --version
//
// Subcommands: create-table, check, delete-expired, stats, sessions, revoke.
// Every subcommand takes --table, --key-attribute, --data-attribute,
// --expiry-attribute, --key-prefix, --owner-attribute and --owner-index
// (defaults as the library's Options), --endpoint, --region and --profile
// (otherwise the standard AWS configuration chain applies: environment,
// shared config, AWS_ENDPOINT_URL_DYNAMODB), and --timeout, with a default
// for each subcommand. Run `dynamostore SUBCOMMAND --help` for a
// subcommand's flags.
//
// Each subcommand checks what it acts on before it acts: the table and its
// key schema, and for sessions and revoke the owner index and its key. One
// that finds nothing to act on where the table's items say a name is wrong
// exits 1 with the flag that is likely wrong. Its counts say what they
// count: live sessions, expired ones, and items that are no sessions. A run
// interrupted (Ctrl-C or SIGTERM) or timed out prints what it had done so
// far, then why it stopped; a second Ctrl-C or SIGTERM ends it at once.
// delete-expired --dry-run is the real run, the library's DeleteExpired
// with its Scan, segments, read cap and rule, without its deletes.
//
// sessions lists one owner's live sessions as the library's OwnerSessions
// does, with each session's ID, last write, expiry and size; revoke
// revokes them all (DeleteOwner), one by its ID (--session,
// DeleteOwnerSession) or all but the most recent (--keep N, LimitOwner).
//
// Exit codes: 0 on success, 1 when the command failed or found a problem, 2
// for a usage error (a flag refused before any request is sent, or a
// --read-rate that would make the scan last longer than a day without
// --force).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const usage = `usage: dynamostore SUBCOMMAND [flags]
       dynamostore --version

Subcommands:
  create-table    create the session table (on-demand, owner index, TTL on the expiry attribute),
                  or add the owner index and TTL to an existing one
  check           check the table's key schema, owner index and TTL against the options
  delete-expired  delete expired sessions once (--dry-run: the same sweep without its deletes)
  stats           count live and expired sessions and their sizes (a full Scan)
  sessions        list one owner's live sessions: ID, last write, expiry, size (--owner ID; a Query of the owner index)
  revoke          revoke every session of one owner, live and expired (--owner ID; a Query of the owner index);
                  --session ID only that one, --keep N all but the N most recently written
  version         print the tool's version and the Go version it was built with

Every subcommand takes --timeout, with a default of its own.
Run 'dynamostore SUBCOMMAND --help' for the flags of a subcommand.
`

func main() {
	ctx, stop := notifyContext()
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// notifyContext returns a context that the first SIGINT (Ctrl-C) or
// SIGTERM cancels, so that the run stops and prints what it had done. The
// signals' default action is back before the context ends: a second one
// ends the process at once, should the run not stop.
func notifyContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
		}
		signal.Stop(sigs)
		cancel()
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}

// run executes one command line and returns the exit code: 0 on success, 1
// when the command failed or found a problem, 2 for a usage error. Data goes
// to stdout; errors, notices and progress to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, version())
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
	return runFlags(ctx, name, cmd, f, stdout, stderr)
}

// runFlags runs the subcommand name, cmd, with the flags f, and returns the
// exit code.
func runFlags(ctx context.Context, name string, cmd func(context.Context, *flags, io.Writer) error, f *flags, stdout, stderr io.Writer) int {
	f.stderr = stderr
	f.progress = newProgress(stderr)
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, f.timeout, &timedOut{f.timeout})
		defer cancel()
	}
	if err := cmd(ctx, f, stdout); err != nil {
		f.progress.clear()
		fmt.Fprintf(stderr, "dynamostore %s: %s\n", name, f.explain(ctx, err))
		var usage *usageError
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	return 0
}

// timedOut is the cause of a run's context ending at --timeout.
type timedOut struct{ after time.Duration }

func (t *timedOut) Error() string { return "--timeout " + formatDuration(t.after) + " ran out" }

// usageError is a flag refused once the table was seen, such as a
// --read-rate too low for its size: run exits 2, as for any usage error.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// explain returns the message for a command's error: one line, without the
// library's own "dynamostore: " prefix (run adds the subcommand's), the same
// for a missing table whichever command met it, with a hint where the
// credentials are missing, and saying so when --timeout ran out or the run
// was interrupted.
func (f *flags) explain(ctx context.Context, err error) string {
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return fmt.Sprintf("table %s does not exist; create it with '%s'", f.opts.TableName, f.command("create-table"))
	}
	msg := strings.TrimPrefix(err.Error(), "dynamostore: ")
	if strings.Contains(msg, "get credentials") || strings.Contains(msg, "get identity") {
		hint := "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
		if f.local {
			hint += " (DynamoDB Local accepts any, such as AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local)"
		}
		return hint
	}
	var t *timedOut
	switch {
	case ctx.Err() != nil && errors.As(context.Cause(ctx), &t):
		return fmt.Sprintf("timed out: no result within --timeout %s (pass a longer one, or 0 for none): %s", formatDuration(f.timeout), msg)
	case ctx.Err() != nil:
		return "interrupted: " + msg
	case errors.Is(err, errRequestTimeout):
		return fmt.Sprintf("DynamoDB did not answer within %s, the tool's limit on each request (whatever --timeout says); is --endpoint right, and does it answer? %s",
			formatDuration(f.requestTimeout), msg)
	case f.readRate > 0 && f.timeout > 0 && strings.Contains(msg, "would exceed context deadline"):
		// golang.org/x/time/rate refuses at once a wait that would end
		// after the deadline, with this message and no error value.
		return fmt.Sprintf("%s: at --read-rate %v the next page would wait past --timeout %s; raise one of them", msg, f.readRate, formatDuration(f.timeout))
	}
	return msg
}

// version returns the tool's module version, as the Go toolchain recorded
// it ("(devel)" when built from a clone, with the commit when known), and
// the Go version it was built with.
func version() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if ok && v == "(devel)" {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value[:min(len(s.Value), 12)]
			case "vcs.modified":
				if s.Value == "true" {
					modified = ", modified"
				}
			}
		}
		if rev != "" {
			v += " (commit " + rev + modified + ")"
		}
	}
	return fmt.Sprintf("dynamostore %s, %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
