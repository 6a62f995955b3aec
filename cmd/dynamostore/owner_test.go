package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynamostore/dynamostore"
)

// counts returns the count lines of sessions' output, without its table
// of sessions.
func counts(out string) string {
	if i := strings.Index(out, "ID  "); i >= 0 {
		return out[:i]
	}
	return out
}

// sessionRows parses the table of sessions' output, a map per row from its
// column's header to its value.
func sessionRows(t *testing.T, out string) []map[string]string {
	t.Helper()
	i := strings.Index(out, "ID  ")
	if i < 0 {
		return nil
	}
	cols := regexp.MustCompile(`\s{2,}`)
	lines := strings.Split(strings.TrimSuffix(out[i:], "\n"), "\n")
	header := cols.Split(strings.TrimSpace(lines[0]), -1)
	var rows []map[string]string
	for _, line := range lines[1:] {
		fields := strings.Fields(line)
		if len(fields) != len(header) {
			t.Fatalf("got row %q: expected the %d columns %q", line, len(header), header)
		}
		row := map[string]string{}
		for j, h := range header {
			row[h] = fields[j]
		}
		rows = append(rows, row)
	}
	return rows
}

// ownerSessionsTable creates a table with its owner index and a store of
// sessions keyed under app: whose owner is their data, and commits, for
// u1, t1 then t2 then t3, each written a millisecond or more after the one
// before, and for u2, t4. It returns the store once the tool lists u1's
// three sessions. (No expired one: DynamoDB Local, with the TTL that
// create-table turns on, deletes it at a moment of its own.)
func ownerSessionsTable(t *testing.T) (string, *dynamostore.DynamoStore) {
	t.Helper()
	name := tableName(t)
	if code, out, errOut := dynamostoreCmd(t, "create-table", "--table", name); code != 0 {
		t.Fatalf("got %d, %q, %q: expected the table created", code, out, errOut)
	}
	t.Cleanup(func() { client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	store := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) {
		o.TableName = name
		o.KeyPrefix = "app:"
		o.Owner = func(b []byte) (string, bool) { return string(b), len(b) > 0 }
	})
	commit := func(token, owner string, expiry time.Time) {
		t.Helper()
		// The clock moves on a millisecond, so each write's time is its own.
		for start := time.Now().UnixMilli(); time.Now().UnixMilli() == start; {
		}
		if err := store.Commit(token, []byte(owner), expiry); err != nil {
			t.Fatal(err)
		}
	}
	for i, token := range []string{"t1", "t2", "t3"} {
		// Expiries in the opposite order, so the listing's order is the
		// last writes', not the expiries'.
		commit(token, "u1", time.Now().Add(time.Duration(3-i)*time.Hour))
	}
	commit("t4", "u2", time.Now().Add(time.Hour))
	// The owner index is eventually consistent: wait until it has them.
	hang := time.Now().Add(2 * time.Minute)
	for {
		code, out, errOut := dynamostoreCmd(t, "sessions", "--table", name, "--key-prefix", "app:", "--owner", "u1")
		if code == 0 && counts(out) == "live sessions: 3\nexpired sessions: 0\n" {
			return name, store
		}
		if time.Now().After(hang) {
			t.Fatalf("got %d, %q, %q: expected 3 live sessions", code, out, errOut)
		}
		time.Sleep(10 * time.Millisecond) // a poll, not a wait for the event
	}
}

// TestSessionsList: sessions lists the owner's live sessions as the
// library's OwnerSessions does, most recently written first, with ID, last
// write, expiry and size; tokens only with --show-tokens.
func TestSessionsList(t *testing.T) {
	t.Parallel()
	name, store := ownerSessionsTable(t)
	want, err := store.OwnerSessions(context.Background(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	for _, showTokens := range []bool{false, true} {
		args := []string{"sessions", "--table", name, "--key-prefix", "app:", "--owner", "u1"}
		if showTokens {
			args = append(args, "--show-tokens")
		}
		code, out, errOut := dynamostoreCmd(t, args...)
		rows := sessionRows(t, out)
		if code != 0 || errOut != "" || len(rows) != len(want) {
			t.Fatalf("--show-tokens=%v: got %d, %q, %q: expected the %d sessions OwnerSessions lists", showTokens, code, out, errOut, len(want))
		}
		for i, w := range want {
			row := rows[i]
			if row["ID"] != w.ID || row["LAST WRITE"] != formatTime(w.LastWrite) || row["EXPIRES"] != formatTime(w.Expiry) || row["SIZE"] != strconv.Itoa(w.Size) {
				t.Fatalf("row %d: got %v: expected %s %s %s %d", i, row, w.ID, formatTime(w.LastWrite), formatTime(w.Expiry), w.Size)
			}
			if wantToken := fmt.Sprint("t", 3-i); showTokens && row["TOKEN"] != wantToken {
				t.Fatalf("row %d: got token %q: expected %s, the most recently written first", i, row["TOKEN"], wantToken)
			}
		}
		for _, token := range []string{"t1", "t2", "t3"} {
			if !showTokens && strings.Contains(out, token) {
				t.Fatalf("got %q: expected no token without --show-tokens", out)
			}
		}
	}
}

// TestRevokeSessionAndKeep: revoke --session revokes the owner's session
// with that ID and no other, and exits 1 with one line when the owner has
// none; --keep N keeps the N most recently written live sessions.
func TestRevokeSessionAndKeep(t *testing.T) {
	t.Parallel()
	name, store := ownerSessionsTable(t)
	ctx := context.Background()
	listed, err := store.OwnerSessions(ctx, "u1")
	if err != nil || len(listed) != 3 {
		t.Fatalf("got %v, %v: expected 3 sessions", listed, err)
	}
	t2 := listed[1].ID // t3, t2, t1
	base := []string{"--table", name, "--key-prefix", "app:"}
	revoke := func(args ...string) (int, string, string) {
		return dynamostoreCmd(t, append(append([]string{"revoke"}, base...), args...)...)
	}
	found := func(token string) bool {
		_, ok, err := store.Find(token)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	// Another owner's ID, or one that names no session: nothing, exit 1.
	for _, c := range []struct{ owner, id string }{{"u2", t2}, {"u1", "AAAAAAAAAAAAAAAAAAAAAA"}} {
		code, out, errOut := revoke("--owner", c.owner, "--session", c.id)
		if code != 1 || out != "" || !strings.Contains(errOut, "the owner has no live session with the --session ID") || strings.Contains(errOut, c.id) || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, c.owner) {
			t.Fatalf("--owner %s --session %s: got %d, %q, %q: expected one line without the owner, exit 1", c.owner, c.id, code, out, errOut)
		}
	}
	if !found("t2") {
		t.Fatal("t2 was revoked by another owner's revoke")
	}
	if code, out, errOut := revoke("--owner", "u1", "--session", t2); code != 0 || out != "revoked 1 sessions: 1 live, 0 expired\n" {
		t.Fatalf("got %d, %q, %q: expected t2 revoked", code, out, errOut)
	}
	if found("t2") || !found("t1") || !found("t3") || !found("t4") {
		t.Fatal("expected t2 revoked and only t2")
	}
	if code, _, errOut := revoke("--owner", "u1", "--session", t2); code != 1 || !strings.Contains(errOut, "no live session with the --session ID") {
		t.Fatalf("got %d, %q: expected a revoked session not found again", code, errOut)
	}

	// t1 written again is now the most recent: --keep 1 keeps it.
	for start := time.Now().UnixMilli(); time.Now().UnixMilli() == start; {
	}
	if err := store.Commit("t1", []byte("u1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := revoke("--owner", "u1", "--keep", "1"); code != 0 || out != "revoked 1 live sessions, keeping the 1 most recently written\n" {
		t.Fatalf("got %d, %q, %q: expected t3 revoked", code, out, errOut)
	}
	if !found("t1") || found("t3") || !found("t4") {
		t.Fatal("expected t1 kept, t3 revoked, u2's t4 untouched")
	}
	if code, out, errOut := revoke("--owner", "u1", "--keep", "1"); code != 0 || out != "revoked 0 live sessions, keeping the 1 most recently written\n" {
		t.Fatalf("got %d, %q, %q: expected nothing more to revoke", code, out, errOut)
	}

	// Usage errors, before any request.
	for _, args := range [][]string{
		{"--owner", "u1", "--session", t2, "--keep", "1"},
		{"--owner", "u1", "--session", "", "--keep", "1"},
		{"--owner", "u1", "--session", ""},
		{"--owner", "u1", "--keep", "-1"},
		{"--owner", "u1", "--keep", "many"},
	} {
		code, out, errOut := revoke(args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("%v: got %d, %q, %q: expected a one-line usage error", args, code, out, errOut)
		}
	}
	if !found("t1") || !found("t4") {
		t.Fatal("a refused revoke revoked something")
	}
}
