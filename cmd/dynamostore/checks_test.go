package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// ownedTable creates the table name with its owner index, and TTL (where
// the endpoint has it) on an attribute the sessions lack, so that expired
// ones stay; it commits, under KeyPrefix "app:", two live sessions and an
// expired one of owner u6, and a live one of u7, and waits until the owner
// index lists them.
func ownedTable(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	ddblocal.Setup(t, "CreateTable "+name, func(ctx context.Context) error {
		return dynamostore.CreateTable(ctx, client(), func(o *dynamostore.Options) {
			o.TableName = name
			o.ExpiryAttribute = "no_ttl"
			o.Logger = slog.New(slog.DiscardHandler)
		})
	})
	t.Cleanup(func() { client().DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: &name}) })
	store := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) {
		o.TableName = name
		o.KeyPrefix = "app:"
		o.Owner = func(b []byte) (string, bool) { return string(b), len(b) > 0 }
	})
	for _, s := range []struct {
		token, owner string
		expiry       time.Duration
	}{{"a1", "u6", time.Hour}, {"a2", "u6", time.Hour}, {"e1", "u6", -time.Hour}, {"b1", "u7", time.Hour}} {
		if err := store.Commit(s.token, []byte(s.owner), time.Now().Add(s.expiry)); err != nil {
			t.Fatal(err)
		}
	}
	// The owner index is eventually consistent: wait until it has them.
	hang := time.Now().Add(2 * time.Minute)
	for {
		code, out, errOut := dynamostoreCmd(t, "sessions", "--table", name, "--key-prefix", "app:", "--owner", "u6")
		if code == 0 && counts(out) == "live sessions: 2\nexpired sessions: 1\n" {
			return
		}
		if time.Now().After(hang) {
			t.Fatalf("got %d, %q, %q: expected 2 live and 1 expired session", code, out, errOut)
		}
		time.Sleep(10 * time.Millisecond) // a poll, not a wait for the event
	}
}

// TestWrongNames: a subcommand given a wrong name finds nothing to act on,
// and rather than report zero and succeed, it exits 1 with one line that
// names the flag; it touches nothing. With the right names, revoke says how
// many of what it revoked were live and how many expired.
func TestWrongNames(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	ownedTable(t, name)
	base := []string{"--table", name, "--key-prefix", "app:"}
	for _, c := range []struct {
		args       []string
		stdout     string // what it printed before it failed
		err, other string // in its one line on stderr
	}{
		{args: []string{"revoke", "--owner", "u6", "--key-attribute", "foo"},
			err: `the table's key is hash "session_key" (S); want a partition key "foo" of type S and no sort key; is --key-attribute right?`},
		{args: []string{"sessions", "--owner", "u6", "--key-attribute", "foo"}, err: "is --key-attribute right?"},
		{args: []string{"sessions", "--owner", "u6", "--owner-attribute", "own"},
			err: `index "owner-index" is not keyed on "own" alone: its key is hash "owner"; is --owner-attribute right?`},
		{args: []string{"revoke", "--owner", "u6", "--owner-index", "nope"},
			err: `has no index "nope" (its indexes are owner-index; is --owner-index right?)`},
		{args: []string{"revoke", "--owner", "u6", "--data-attribute", "foo"}, stdout: "revoked 0 sessions: 0 live, 0 expired\n",
			err:   `revoked no session: index owner-index lists 3 items for the owner, and none of the 3 items sampled under the key prefix has attribute "foo" (nor "foo_zstd", "foo_sealed" or "foo_zstd_sealed")`,
			other: "they have data, expires, expires_ms, last_write_ms, owner, session_key; is --data-attribute right?"},
		{args: []string{"sessions", "--owner", "u6", "--expiry-attribute", "foo"}, stdout: "live sessions: 0\nexpired sessions: 0\n",
			err: `found no session: index owner-index lists 3 items for the owner, and none of the 3 items sampled under the key prefix has attribute "foo"; they have`, other: "is --expiry-attribute right?"},
		{args: []string{"revoke", "--owner", "u6", "--key-prefix", "other:"}, stdout: "revoked 0 sessions: 0 live, 0 expired\n",
			err: `revoked no session: index owner-index lists 3 items for the owner, none with a key under --key-prefix "other:"; is --key-prefix right?`},
		{args: []string{"stats", "--data-attribute", "foo"}, stdout: "items scanned: 4\nlive sessions: 0\n",
			err: `no session found: none of the 4 items sampled under the key prefix has attribute "foo"`, other: "is --data-attribute right?"},
		{args: []string{"delete-expired", "--expiry-attribute", "foo"}, stdout: "deleted 0 expired sessions of 4 items scanned",
			err: `deleted no expired session: none of the 4 items sampled under the key prefix has attribute "foo"; they have data, expires, expires_ms, last_write_ms, owner, session_key; is --expiry-attribute right?`},
		{args: []string{"delete-expired", "--dry-run", "--data-attribute", "foo"}, stdout: "would delete 0 expired sessions of 4 items scanned",
			err: `would delete no expired session: none of the 4 items sampled under the key prefix has attribute "foo"`},
		{args: []string{"delete-expired", "--key-prefix", "other:"}, stdout: "deleted 0 expired sessions of 4 items scanned",
			err: `none of the 4 items sampled has a key that is --key-prefix "other:" followed by a token; is --key-prefix right?`},
	} {
		code, out, errOut := dynamostoreCmd(t, append(append([]string{c.args[0]}, base...), c.args[1:]...)...)
		if c.args[0] == "stats" { // its notice of a full Scan comes first
			notice, rest, _ := strings.Cut(errOut, "\n")
			if !strings.HasPrefix(notice, "a full Scan") {
				t.Fatalf("got %q: expected the notice of a full Scan", errOut)
			}
			errOut = rest
		}
		if code != 1 || !strings.HasPrefix(out, c.stdout) || !strings.HasPrefix(errOut, "dynamostore "+c.args[0]+": ") ||
			!strings.Contains(errOut, c.err) || !strings.Contains(errOut, c.other) || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "ValidationException") {
			t.Fatalf("%v: got %d, %q, %q: expected exit 1, %q on stdout and one line with %q and %q", c.args, code, out, errOut, c.stdout, c.err, c.other)
		}
	}

	// Nothing was revoked or deleted; the right names find it all.
	if code, out, errOut := dynamostoreCmd(t, append([]string{"sessions", "--owner", "u6"}, base...)...); code != 0 || counts(out) != "live sessions: 2\nexpired sessions: 1\n" {
		t.Fatalf("got %d, %q, %q: expected the owner's sessions untouched", code, out, errOut)
	}
	if code, out, errOut := dynamostoreCmd(t, append([]string{"revoke", "--owner", "u6"}, base...)...); code != 0 || out != "revoked 3 sessions: 2 live, 1 expired\n" {
		t.Fatalf("got %d, %q, %q: expected 2 live and 1 expired session revoked", code, out, errOut)
	}
	// An owner with nothing in the index: zero, and no error.
	for _, cmd := range []string{"revoke", "sessions"} {
		code, out, errOut := dynamostoreCmd(t, append([]string{cmd, "--owner", "u6"}, base...)...)
		want := map[string]string{"revoke": "revoked 0 sessions: 0 live, 0 expired\n", "sessions": "live sessions: 0\nexpired sessions: 0\n"}[cmd]
		if code != 0 || out != want || errOut != "" {
			t.Fatalf("%s: got %d, %q, %q: expected %q", cmd, code, out, errOut, want)
		}
	}
	if code, out, errOut := dynamostoreCmd(t, append([]string{"sessions", "--owner", "u7"}, base...)...); code != 0 || counts(out) != "live sessions: 1\nexpired sessions: 0\n" {
		t.Fatalf("got %d, %q, %q: expected the other owner's session kept", code, out, errOut)
	}
	// An owner the store never indexes (sessionitem.CheckOwner) is a usage
	// error, not 0 sessions, and the line does not repeat it.
	for owner, why := range map[string]string{
		strings.Repeat("u", sessionitem.MaxKeyBytes+1): "the owner is 2049 bytes, over DynamoDB's 2048-byte limit on an index key",
		"u6\xff": "the owner is not valid UTF-8",
	} {
		for _, cmd := range []string{"sessions", "revoke"} {
			code, out, errOut := dynamostoreCmd(t, append([]string{cmd, "--owner", owner}, base...)...)
			want := fmt.Sprintf("dynamostore %s: --owner: %s: the store never indexes such an owner", cmd, why)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, owner) {
				t.Fatalf("%s --owner of %d bytes: got %d, %q, %q: expected exit 2 and one line beginning %q", cmd, len(owner), code, out, errOut, want)
			}
		}
	}
	// The longest owner the store indexes is taken.
	if _, err := parseFlags("revoke", []string{"--owner", strings.Repeat("é", sessionitem.MaxKeyBytes/2)}, io.Discard); err != nil {
		t.Fatalf("got %v: expected an owner of %d bytes taken", err, sessionitem.MaxKeyBytes)
	}
}

// TestSessionsStoppedEarly: sessions stopped after the owner index listed
// the owner's 3 sessions and 2 of them were read (DynamoDB left the third
// unprocessed, and the read of it hangs) prints what it had seen, then
// why it stopped.
func TestSessionsStoppedEarly(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	ownedTable(t, name)
	p := newProxy(t)
	p.response = func(op string, body map[string]any) {
		if op != "BatchGetItem" {
			return
		}
		responses := body["Responses"].(map[string]any)
		var kept []any
		for _, item := range responses[name].([]any) {
			if item.(map[string]any)["session_key"].(map[string]any)["S"] != "app:e1" {
				kept = append(kept, item)
			}
		}
		responses[name] = kept
		body["UnprocessedKeys"] = map[string]any{name: map[string]any{"Keys": []any{map[string]any{"session_key": map[string]any{"S": "app:e1"}}}}}
	}
	var reads atomic.Int32
	second := make(chan struct{})
	p.hold = func(ctx context.Context, op string, body map[string]any) bool {
		if op != "BatchGetItem" || reads.Add(1) == 1 {
			return true
		}
		close(second) // the read of what was left unprocessed: it hangs
		<-ctx.Done()
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var code int
	var out, errOut string
	go func() {
		defer close(done)
		code, out, errOut = proxyCmd(ctx, p, "sessions", "--table", name, "--key-prefix", "app:", "--owner", "u6")
	}()
	select {
	case <-second:
	case <-time.After(2 * time.Minute): // only a hang reaches it
		t.Fatal("waited 2m for the second BatchGetItem")
	}
	cancel()
	<-done
	want := "stopped early: the owner index listed 3 items for the owner under the key prefix; of the 2 sessions read before it stopped, 2 had not expired and 0 had\n"
	if code != 1 || out != want || !strings.HasPrefix(errOut, "dynamostore sessions: interrupted: ") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("got %d, %q, %q: expected %q and the interruption", code, out, errOut, want)
	}
}
