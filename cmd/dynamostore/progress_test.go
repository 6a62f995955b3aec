package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/creack/pty"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// terminal is a pseudo-terminal of the given width, with what the command
// wrote to it.
type terminal struct {
	tty    *os.File
	mu     sync.Mutex
	screen bytes.Buffer
	wrote  chan struct{} // receives after each write reaches the screen
	read   chan struct{} // closed once the terminal is closed and read
}

func newTerminal(t *testing.T, cols uint16) *terminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	term := &terminal{tty: tty, wrote: make(chan struct{}, 1), read: make(chan struct{})}
	go func() {
		defer close(term.read)
		defer ptmx.Close()
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.screen.Write(buf[:n])
			term.mu.Unlock()
			select {
			case term.wrote <- struct{}{}:
			default:
			}
			if err != nil {
				return // EIO once the terminal is closed
			}
		}
	}()
	return term
}

// waitFor returns once the screen shows what matches re.
func (term *terminal) waitFor(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	hang := time.After(2 * time.Minute) // only a hang reaches it
	for {
		term.mu.Lock()
		found := re.Match(term.screen.Bytes())
		term.mu.Unlock()
		if found {
			return
		}
		select {
		case <-term.wrote:
		case <-hang:
			t.Fatalf("waited 2m for %v on the terminal", re)
		}
	}
}

// close closes the terminal and returns all that was written to it.
func (term *terminal) close() string {
	term.tty.Close()
	<-term.read
	return term.screen.String()
}

var progressWrite = regexp.MustCompile("\r([^\r\n\x1b]*)\x1b\\[K")

// checkProgress fails unless the screen has progress lines, each within a
// terminal of cols columns, and returns them.
func checkProgress(t *testing.T, screen string, cols int) []string {
	t.Helper()
	var lines []string
	for _, m := range progressWrite.FindAllStringSubmatch(screen, -1) {
		if m[1] == "" {
			continue // a clear
		}
		if n := len([]rune(m[1])); n >= cols {
			t.Fatalf("got a progress line of %d columns, %q: expected fewer than %d, so that it never wraps", n, m[1], cols)
		}
		lines = append(lines, m[1])
	}
	if len(lines) == 0 {
		t.Fatalf("got screen %q: expected a progress line", screen)
	}
	return lines
}

// TestProgressOnTerminal: delete-expired at a terminal 40 columns wide
// shows its progress in place, cut to the width, and then its summary, with
// the exact counts, on a line of its own.
func TestProgressOnTerminal(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	s := dynamostore.NewWithCleanupInterval(client(), 0, func(o *dynamostore.Options) { o.TableName = name })
	for i := range 50 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	term := newTerminal(t, 40)
	code := run(context.Background(), []string{"delete-expired", "--table", name, "--endpoint", endpoint}, term.tty, term.tty)
	screen := term.close()
	if code != 0 {
		t.Fatalf("got %d, %q: expected success", code, screen)
	}
	lines := checkProgress(t, screen, 40)
	if !strings.HasPrefix(lines[0], "delete-expired "+name[:10]) {
		t.Fatalf("got %q: expected the progress to name the command and table", lines[0])
	}
	if !regexp.MustCompile("\r\x1b\\[Kdeleted 50 expired sessions of 50 items scanned in [^\r\n]*\r\n$").MatchString(screen) {
		t.Fatalf("got screen %q: expected the line cleared, then the summary with exact counts on a line of its own", screen)
	}
}

// hangingScans is DynamoDB Local behind a proxy on which every Scan waits
// until its client gives up, as on a table too large to scan quickly.
func hangingScans(t *testing.T) string {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".Scan") {
			select {
			case <-r.Context().Done():
			case <-stop: // the test ended without its client giving up
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv.URL
}

// TestInterruptOnTerminal: stats and a dry run show progress while they
// scan, and an interrupt (Ctrl-C cancels the context) leaves its message on
// a line of its own.
func TestInterruptOnTerminal(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	proxy := hangingScans(t)
	for _, args := range [][]string{{"stats"}, {"delete-expired", "--dry-run"}, {"delete-expired"}} {
		term := newTerminal(t, 40)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, append(args, "--table", name, "--endpoint", proxy), term.tty, term.tty)
		}()
		term.waitFor(t, progressWrite) // the scan hangs: progress is on the screen
		cancel()
		code := <-done
		screen := term.close()
		checkProgress(t, screen, 40)
		// The line cleared, what it had counted, and then why it stopped,
		// each on a line of its own.
		if code != 1 || !regexp.MustCompile("\r\x1b\\[Kstopped early: [^\x1b]*\r\ndynamostore "+args[0]+": interrupted: [^\r\n]*context canceled\r\n$").MatchString(screen) {
			t.Fatalf("%v: got %d, screen %q: expected the line cleared, the counts so far, and the interruption on a line of its own", args, code, screen)
		}
	}
}

// TestNoProgressOffTerminal: through a pipe or a file, nothing but the
// summary is written.
func TestNoProgressOffTerminal(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"delete-expired", "--table", name, "--endpoint", endpoint}, &out, &errOut); code != 0 {
		t.Fatalf("got %d, %q", code, errOut.String())
	}
	if errOut.Len() != 0 || strings.ContainsAny(out.String(), "\r\x1b") {
		t.Fatalf("got stdout %q, stderr %q: expected the summary alone", out.String(), errOut.String())
	}
}

// TestStoppedEarlyOnTerminal: a real delete-expired and a revoke,
// interrupted once their progress shows what they did, print it before the
// interruption: the deletes that were done are counted.
func TestStoppedEarlyOnTerminal(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	fillSweepTable(t, name, 10, 0, 0)
	owned := tableName(t)
	ownedTable(t, owned)
	for _, c := range []struct {
		args     []string
		progress string
		want     string
	}{
		{[]string{"delete-expired", "--table", name, "--key-prefix", "app:"}, "deleted 5 ", "stopped early: deleted 5 expired sessions of 5 items scanned in "},
		{[]string{"revoke", "--table", owned, "--key-prefix", "app:", "--owner", "u6"}, "revoked 2 sessions", "stopped early: revoked 2 sessions: "},
	} {
		p := newProxy(t)
		held := stallSecondPage(p)
		p.request = func(op string, body map[string]any) {
			if op == "Scan" || op == "Query" {
				body["Limit"] = map[string]int{"Scan": 5, "Query": 2}[op]
			}
		}
		held2 := make(chan struct{}, 1)
		hold := p.hold
		p.hold = func(ctx context.Context, op string, body map[string]any) bool {
			if op == "Query" && body["ExclusiveStartKey"] != nil {
				held2 <- struct{}{}
				<-ctx.Done()
				return false
			}
			return hold(ctx, op, body)
		}
		term := newTerminal(t, 200)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() { done <- run(ctx, append(c.args, "--endpoint", p.url), term.tty, term.tty) }()
		select {
		case <-held:
		case <-held2:
		case <-time.After(2 * time.Minute): // only a hang reaches it
			t.Fatalf("%v: waited 2m for the second page", c.args)
		}
		term.waitFor(t, regexp.MustCompile(regexp.QuoteMeta(c.progress)))
		cancel()
		code := <-done
		screen := term.close()
		if code != 1 || !regexp.MustCompile("\r\x1b\\[K"+regexp.QuoteMeta(c.want)+"[^\r\n]*\r\ndynamostore "+c.args[0]+": interrupted: [^\r\n]*context canceled\r\n$").MatchString(screen) {
			t.Fatalf("%v: got %d, screen %q: expected %q, then the interruption", c.args, code, screen, c.want)
		}
		if c.args[0] == "revoke" && !regexp.MustCompile(`revoked 2 sessions: (2 live, 0|1 live, 1|0 live, 2) expired\r\n`).MatchString(screen) {
			t.Fatalf("got screen %q: expected the 2 revoked counted as live or expired", screen)
		}
	}
}

// TestProgressCountsSessions: delete-expired's progress line counts the
// expired sessions it deleted, as its summary does, and not the ended
// revocations it removed with them, which the summary counts apart. The
// sweep's second page is held, so that the progress line shows the count
// once all of the first page's deletes are answered.
func TestProgressCountsSessions(t *testing.T) {
	t.Parallel()
	name := tableName(t)
	createWithoutTTL(t, name)
	fillSweepTable(t, name, 3, 0, 0)
	past := time.Now().Add(-time.Hour)
	for _, key := range []string{"app:rev-1", "app:rev-2"} { // revocations whose period is over
		if _, err := client().PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &name, Item: map[string]types.AttributeValue{
			"session_key":                &types.AttributeValueMemberS{Value: key},
			"expires":                    &types.AttributeValueMemberN{Value: strconv.FormatInt(past.Unix(), 10)},
			sessionitem.RevokedAttribute: &types.AttributeValueMemberN{Value: strconv.FormatInt(past.UnixMilli(), 10)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	p := newProxy(t)
	held := stallSecondPage(p) // pages of 5: the 5 expired items, then a page held
	var mu sync.Mutex
	answered, allAnswered := 0, make(chan struct{})
	p.holdAnswer = func(ctx context.Context, op string, body map[string]any) bool {
		if op == "DeleteItem" {
			mu.Lock()
			if answered++; answered == 5 {
				close(allAnswered)
			}
			mu.Unlock()
		}
		return true
	}
	term := newTerminal(t, 200)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"delete-expired", "--table", name, "--key-prefix", "app:", "--endpoint", p.url}, term.tty, term.tty)
	}()
	for _, wait := range []chan struct{}{held, allAnswered} {
		select {
		case <-wait:
		case <-time.After(2 * time.Minute): // only a hang reaches it
			t.Fatal("waited 2m for the sweep's first page and its 5 deletes")
		}
	}
	// The progress lines from now on: the last delete's answer may still
	// be on its way to the counter, but no line counts more than the 3
	// sessions, and one counts them all.
	term.mu.Lock()
	from := term.screen.Len()
	term.mu.Unlock()
	deleted := regexp.MustCompile(`\r[^\r]*, deleted (\d+) \(`)
	hang := time.After(2 * time.Minute) // only a hang reaches it
	for counted := false; !counted; {
		term.mu.Lock()
		lines := deleted.FindAllStringSubmatch(term.screen.String()[from:], -1)
		term.mu.Unlock()
		for _, m := range lines {
			if n, _ := strconv.Atoi(m[1]); n > 3 {
				t.Fatalf("got progress %q: expected no more than the 3 expired sessions counted", m[0])
			} else if n == 3 {
				counted = true
			}
		}
		if counted {
			break
		}
		select {
		case <-term.wrote:
		case <-hang:
			t.Fatalf("waited 2m for the progress to count the 3 deletes")
		}
	}
	cancel()
	code := <-done
	screen := term.close()
	want := regexp.MustCompile("\r\x1b\\[Kstopped early: deleted 3 expired sessions of 5 items scanned in [^;\r\n]*; removed 2 revocations whose period was over\r\n")
	if code != 1 || !want.MatchString(screen) {
		t.Fatalf("got %d, screen %q: expected the summary to count the 3 sessions and the 2 revocations apart", code, screen)
	}
}
