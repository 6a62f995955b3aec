package dynamostore

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

// endpoint is the DynamoDB Local server every test in this package uses.
var endpoint string

// hangTimeout is how long a test waits for something that must happen
// before it calls it a hang. Nothing waits for a fixed time: a test waits for
// the event it needs, and only a real hang reaches this, however busy the
// machine.
const hangTimeout = 2 * time.Minute

// waitChan returns once ch is closed or receives.
func waitChan[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangTimeout):
		t.Fatalf("waited %v for %s", hangTimeout, what)
	}
	panic("unreachable")
}

// waitUntil polls cond, for what no event announces, until it holds.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	hang := time.Now().Add(hangTimeout)
	for !cond() {
		if time.Now().After(hang) {
			t.Fatalf("waited %v for %s", hangTimeout, what)
		}
		time.Sleep(time.Millisecond) // a poll, not a wait for the event
	}
}

func TestMain(m *testing.M) {
	os.Exit(ddblocal.Run(m, &endpoint))
}

// newClient returns a DynamoDB client for the test server, whose idle
// connections close when the test ends, so goleak sees none of them.
func newClient(tb testing.TB) *dynamodb.Client {
	tb.Helper()
	tr := &http.Transport{}
	tb.Cleanup(tr.CloseIdleConnections)
	return dynamodb.New(ddblocal.NewClient(endpoint).Options(), func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: tr, Timeout: ddblocal.RequestTimeout}
	})
}

// setupContext returns a context that ends ddblocal.SetupTimeout from now,
// for a test whose subject waits for DynamoDB to make a table or an index
// ACTIVE (CreateTable): a misbehaving endpoint then fails it with
// CreateTable's error naming the wait, rather than hanging it.
func setupContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), ddblocal.SetupTimeout)
	tb.Cleanup(cancel)
	return ctx
}

var tableSeq atomic.Int64

// newTableName returns a table name of the test's own. The process ID keeps
// fuzzing workers, which are processes of their own sharing one server, on
// tables of their own.
func newTableName(tb testing.TB) string {
	name := fmt.Sprintf("t%d-%d-%s", os.Getpid(), tableSeq.Add(1), regexp.MustCompile(`[^a-zA-Z0-9_.-]`).ReplaceAllString(tb.Name(), "_"))
	return name[:min(len(name), 200)]
}

// newTable creates a table of its own for the test and returns an option
// function naming it, followed by optFns.
func newTable(tb testing.TB, optFns ...func(*Options)) []func(*Options) {
	tb.Helper()
	name := newTableName(tb)
	fns := append([]func(*Options){func(o *Options) { o.TableName = name }}, optFns...)
	client := newClient(tb)
	// Quiet: on dynalite every table would log that TTL is off.
	ddblocal.Setup(tb, "CreateTable "+name, func(ctx context.Context) error {
		return CreateTable(ctx, client, append(fns[:len(fns):len(fns)], quietLog)...)
	})
	tb.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return fns
}

// newStore returns a store without a sweeper on a new table of its own,
// calling through client when it is not nil.
func newStore(t *testing.T, client Client, optFns ...func(*Options)) *DynamoStore {
	t.Helper()
	return newStoreWith(t, client, hooks{}, optFns...)
}

// newStoreWith is newStore with the store's hooks h.
func newStoreWith(t *testing.T, client Client, h hooks, optFns ...func(*Options)) *DynamoStore {
	t.Helper()
	fns := newTable(t, optFns...)
	if client == nil {
		client = newClient(t)
	}
	s := newDynamoStore(client, 0, h, fns)
	t.Cleanup(s.StopCleanup)
	return s
}

// spyClient wraps a Client, counting calls and recording inputs, and lets a
// test act before a request goes through.
type spyClient struct {
	Client
	gets, puts, deletes, scans atomic.Int64

	mu            sync.Mutex
	lastGet       *dynamodb.GetItemInput
	lastScan      *dynamodb.ScanInput
	segments      map[int32]bool
	readUnits     float64
	beforeDelete  func(ctx context.Context, in *dynamodb.DeleteItemInput) error
	afterDelete   func(in *dynamodb.DeleteItemInput, err error)
	inFlight, max int
}

func (c *spyClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.gets.Add(1)
	c.mu.Lock()
	c.lastGet = in
	c.mu.Unlock()
	return c.Client.GetItem(ctx, in, optFns...)
}

func (c *spyClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.puts.Add(1)
	return c.Client.PutItem(ctx, in, optFns...)
}

func (c *spyClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.deletes.Add(1)
	c.mu.Lock()
	c.inFlight++
	c.max = max(c.max, c.inFlight)
	before, after := c.beforeDelete, c.afterDelete
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	if before != nil {
		if err := before(ctx, in); err != nil {
			return nil, err
		}
	}
	out, err := c.Client.DeleteItem(ctx, in, optFns...)
	if after != nil {
		after(in, err)
	}
	return out, err
}

func (c *spyClient) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.scans.Add(1)
	out, err := c.Client.Scan(ctx, in, optFns...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastScan = in
	if in.Segment != nil {
		if c.segments == nil {
			c.segments = map[int32]bool{}
		}
		c.segments[*in.Segment] = true
	}
	if err == nil && out.ConsumedCapacity != nil {
		c.readUnits += aws.ToFloat64(out.ConsumedCapacity.CapacityUnits)
	}
	return out, err
}

// rawItem returns the item stored under key, bypassing the store.
func rawItem(t testing.TB, s *DynamoStore, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := newClient(t).GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(s.tableName),
		Key:            map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: key}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("raw GetItem: %v", err)
	}
	return out.Item
}

// putRaw writes item to the store's table, bypassing the store.
func putRaw(t *testing.T, s *DynamoStore, item map[string]types.AttributeValue) {
	t.Helper()
	_, err := newClient(t).PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(s.tableName), Item: item})
	if err != nil {
		t.Fatalf("raw PutItem: %v", err)
	}
}

// watched lets a test wait for a condition on state that other goroutines
// change: they change it with mu held and call changed, and wait checks the
// condition again after every change.
type watched struct {
	mu   sync.Mutex
	next chan struct{} // closed by the next change
}

// changed wakes the waiters; call it with mu held.
func (w *watched) changed() {
	if w.next != nil {
		close(w.next)
		w.next = nil
	}
}

// wait returns true once cond, called with mu held, holds, and false if
// that takes hangTimeout.
func (w *watched) wait(cond func() bool) bool {
	hang := time.NewTimer(hangTimeout)
	defer hang.Stop()
	for {
		w.mu.Lock()
		if cond() {
			w.mu.Unlock()
			return true
		}
		if w.next == nil {
			w.next = make(chan struct{})
		}
		next := w.next
		w.mu.Unlock()
		select {
		case <-next:
		case <-hang.C:
			return false
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used from several
// goroutines, which a test can wait on.
type syncBuffer struct {
	watched
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.changed()
	return b.buf.Write(p)
}

// waitFor returns once the buffer holds s.
func (b *syncBuffer) waitFor(t testing.TB, s string) {
	t.Helper()
	if !b.wait(func() bool { return strings.Contains(b.buf.String(), s) }) {
		t.Fatalf("waited %v for %q in the log; got %q", hangTimeout, s, b.String())
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// quietLog discards the log.
func quietLog(o *Options) { o.Logger = slog.New(slog.DiscardHandler) }

func withLogger(buf *syncBuffer) func(*Options) {
	return func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// DynamoDB Local 3.x runs TTL itself and deletes an expired item within a
// second or so, which would race any test that needs expired items in the
// table. Such tests run the store's clock two hours ahead (clockAhead) and
// commit "expired" sessions an hour ahead of real time (expiredAt), "live"
// ones three hours ahead (liveAt); DynamoDB Local sees none of them expired.
var clockAhead = hooks{now: func() time.Time { return time.Now().Add(2 * time.Hour) }}

func expiredAt() time.Time { return time.Now().Add(time.Hour) }

func liveAt() time.Time { return time.Now().Add(3 * time.Hour) }

// gobSession returns about size bytes of session data as scs's GobCodec
// encodes it for a typical web application: a user, a CSRF token, a flash
// message and a list of recently viewed pages, which grows to the size.
// seed varies the random parts.
func gobSession(tb testing.TB, size int, seed uint64) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	token := make([]byte, 32)
	for i := range token {
		token[i] = byte(rng.Uint32())
	}
	values := map[string]any{
		"user_id":    rng.Int64N(1e9),
		"email":      fmt.Sprintf("user%d@example.com", rng.IntN(1e6)),
		"csrf_token": base64.RawURLEncoding.EncodeToString(token),
		"flash":      "Your changes have been saved.",
		"locale":     "en-GB",
	}
	words := []string{"blue", "cotton", "shirt", "wool", "jumper", "leather", "boots", "linen", "trousers", "silk", "scarf", "denim", "jacket"}
	var recent []string
	for {
		recent = append(recent, fmt.Sprintf("/products/%d-%s-%s?ref=search&q=%s&page=%d",
			rng.IntN(1e6), words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(20)))
		values["recently_viewed"] = recent
		b, err := scs.GobCodec{}.Encode(time.Now().Add(time.Hour), values)
		if err != nil {
			tb.Fatal(err)
		}
		if len(b) >= size {
			return b
		}
	}
}

// offline is a Client for stores whose tests send no request (decoding,
// keys): any call panics.
type offline struct{ Client }
