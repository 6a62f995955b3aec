package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

// TestREADMESamples runs the command-line samples of the README, which are
// written against `make demo`, against a table made as make demo makes it,
// and compares what each prints with what the README shows.
func TestREADMESamples(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```text\n$ export ")
	if !ok {
		t.Fatal("no sample block in the README")
	}
	block, _, _ = strings.Cut(block, "```")
	ddblocal.Setup(t, "CreateTable", func(ctx context.Context) error { // the table make demo makes
		return dynamostore.CreateTable(ctx, client())
	})
	samples := strings.Split(block, "\n$ ")[1:] // the first is the export line
	if len(samples) < 2 {
		t.Fatalf("got %d samples: expected at least check and a missing table", len(samples))
	}
	for _, sample := range samples {
		cmdLine, want, _ := strings.Cut(sample, "\n")
		want = strings.TrimSuffix(want, "\n") + "\n" // the split took the last newline of all but the last
		args := strings.Fields(strings.ReplaceAll(cmdLine, "http://127.0.0.1:PORT", endpoint))
		if args[0] != "dynamostore" {
			t.Fatalf("sample %q: expected a dynamostore command", cmdLine)
		}
		var out bytes.Buffer
		run(context.Background(), args[1:], &out, &out)
		got := strings.ReplaceAll(out.String(), endpoint, "http://127.0.0.1:PORT")
		if ddblocal.IsDynalite() {
			// dynalite has no TTL: what the README shows about TTL (and the
			// "ok" that follows it) is for DynamoDB Local, as make demo runs.
			want, got = withoutTTL(want), withoutTTL(got)
		}
		if got != want {
			t.Fatalf("README sample %q printed\n%s\nexpected, as the README shows,\n%s", cmdLine, got, want)
		}
	}
}

// withoutTTL drops the lines that depend on the endpoint having TTL.
func withoutTTL(s string) string {
	var kept []string
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(line, "ttl: ") || strings.HasPrefix(line, "sweeper: ") || line == "ok\n" ||
			strings.HasPrefix(line, "dynamostore check: TTL is") {
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "")
}
