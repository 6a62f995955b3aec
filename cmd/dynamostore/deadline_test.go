package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

// silentEndpoint is an endpoint that accepts connections and never
// answers.
func silentEndpoint(t *testing.T) string {
	url, _ := countedSilentEndpoint(t)
	return url
}

// countedSilentEndpoint is silentEndpoint, with a count of the connections
// it accepted so far.
func countedSilentEndpoint(t *testing.T) (url string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
}

// TestTimeoutNoAnswer: against an endpoint that never answers, every
// subcommand ends at its --timeout, exits 1, and says the timeout ran out.
func TestTimeoutNoAnswer(t *testing.T) {
	t.Parallel()
	silent := silentEndpoint(t)
	for _, args := range [][]string{
		{"check"}, {"create-table"}, {"stats"}, {"delete-expired"}, {"delete-expired", "--dry-run"}, {"sessions", "--owner", "u1"}, {"revoke", "--owner", "u1"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append(args, "--timeout", "1s", "--endpoint", silent), &out, &errOut)
		want := fmt.Sprintf("dynamostore %s: timed out: no result within --timeout 1s (pass a longer one, or 0 for none): ", args[0])
		if code != 1 || !strings.HasPrefix(errOut.String(), want) || strings.Count(errOut.String(), "\n") != 1 {
			t.Fatalf("%v: got %d, %q, %q: expected one line beginning %q", args, code, out.String(), errOut.String(), want)
		}
	}
}

// creatingIndex creates the table name with its owner index, and returns
// DynamoDB behind a proxy that reports every index as CREATING, as DynamoDB
// does while it fills a new index on a large table.
func creatingIndex(t *testing.T, name string) *ddbProxy {
	t.Helper()
	ddblocal.Setup(t, "CreateTable "+name, func(ctx context.Context) error {
		return dynamostore.CreateTable(ctx, client(), func(o *dynamostore.Options) {
			o.TableName = name
			o.Logger = slog.New(slog.DiscardHandler) // dynalite has no TTL API
		})
	})
	t.Cleanup(func() { client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &name}) })
	p := newProxy(t)
	p.response = func(op string, body map[string]any) {
		if op != "DescribeTable" {
			return
		}
		indexes, _ := body["Table"].(map[string]any)["GlobalSecondaryIndexes"].([]any)
		for _, idx := range indexes {
			idx.(map[string]any)["IndexStatus"] = "CREATING"
		}
	}
	return p
}

// TestCreateTableIndexNeverActive: create-table waits for the owner index
// and says so on stderr off a terminal; when --timeout runs out while the
// index is still CREATING, it says the index did not become ACTIVE.
func TestCreateTableIndexNeverActive(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	p := creatingIndex(t, name)
	code, out, errOut := proxyCmd(context.Background(), p, "create-table", "--table", name, "--timeout", "10s")
	notice := fmt.Sprintf("create-table %s: waiting for index owner-index to become ACTIVE: CREATING, 0 items so far, ", name)
	want := fmt.Sprintf("dynamostore create-table: timed out: no result within --timeout 10s (pass a longer one, or 0 for none): index owner-index of table %s did not become ACTIVE (it is CREATING after ", name)
	// The deadline may end the pause between polls or a DescribeTable in
	// flight: either way the cause is the deadline.
	if code != 1 || out != "" || !strings.HasPrefix(errOut, notice) || !strings.Contains(errOut, "\n"+want) || !strings.HasSuffix(errOut, "context deadline exceeded\n") {
		t.Fatalf("got %d, %q, %q: expected the wait noticed on stderr, then %q", code, out, errOut, want)
	}
}

// signalWriter is a buffer, safe for concurrent use, that receives on
// wrote after each write.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (w *signalWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return w.buf.Write(b)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestCreateTableIndexInterrupted: interrupted while it waits for the
// index, create-table says the same, without waiting for any timeout.
func TestCreateTableIndexInterrupted(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	p := creatingIndex(t, name)
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	errOut := &signalWriter{wrote: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"create-table", "--table", name, "--endpoint", p.url}, &out, errOut) }()
	hang := time.After(2 * time.Minute) // only a hang reaches it
	for !strings.Contains(errOut.String(), "waiting for index owner-index") {
		select {
		case <-errOut.wrote:
		case <-hang:
			t.Fatalf("waited 2m for create-table to wait for the index; stderr %q", errOut.String())
		}
	}
	cancel()
	code := <-done
	want := fmt.Sprintf("dynamostore create-table: interrupted: index owner-index of table %s did not become ACTIVE (it is CREATING after ", name)
	if code != 1 || out.String() != "" || !strings.Contains(errOut.String(), want) || !strings.Contains(errOut.String(), "(--timeout 2h)") {
		t.Fatalf("got %d, %q, %q: expected %q", code, out.String(), errOut.String(), want)
	}
}

// TestRequestTimeout: each request has a deadline of its own, so a run
// without --timeout, or with one of hours, still ends against an endpoint
// that stops answering (after the SDK's 3 attempts where it retries), and
// says that the limit on each request ended it. Whether the endpoint sends
// nothing or stalls in the middle of an answer, the error is one line,
// without the SDK's warning that it could not read the answer's body to
// its end.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	f, err := parseFlags("stats", []string{"--endpoint", "http://127.0.0.1:1", "--region", "us-east-1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f.stderr = io.Discard
	c, err := f.client(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if hc, ok := c.Options().HTTPClient.(*timeoutClient); !ok || hc.timeout != requestTimeout {
		t.Fatalf("got %T: expected a timeoutClient with a timeout of %v", c.Options().HTTPClient, requestTimeout)
	}

	silent, accepted := countedSilentEndpoint(t)
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("Content-Length", "100")
		w.Write([]byte(`{"Table":`)) // and the rest never comes
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(stalled.Close)
	const limited = "dynamostore check: DynamoDB did not answer within 300ms, the tool's limit on each request (whatever --timeout says); is --endpoint right, and does it answer? describe table sessions: "
	for _, c := range []struct {
		endpoint, timeout string
		limit             time.Duration
		want              string
	}{
		{silent, "0", 300 * time.Millisecond, limited},
		{stalled.URL, "0", 300 * time.Millisecond, limited},
		{stalled.URL, "1s", time.Minute, "dynamostore check: timed out: no result within --timeout 1s (pass a longer one, or 0 for none): "},
	} {
		f, err := parseFlags("check", []string{"--timeout", c.timeout, "--endpoint", c.endpoint}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		f.requestTimeout = c.limit
		var out, errOut bytes.Buffer
		code := runFlags(context.Background(), "check", check, f, &out, &errOut)
		if code != 1 || out.Len() != 0 || !strings.HasPrefix(errOut.String(), c.want) || strings.Count(errOut.String(), "\n") != 1 ||
			strings.Count(errOut.String(), "no answer within the limit on each request") > 1 {
			t.Fatalf("%s --timeout %s, each request %v: got %d, %q, %q: expected one line beginning %q", c.endpoint, c.timeout, c.limit, code, out.String(), errOut.String(), c.want)
		}
		if c.endpoint == silent && accepted() != 3 {
			t.Fatalf("got %d connections: expected the SDK's 3 attempts", accepted())
		}
	}
}
