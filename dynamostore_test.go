package dynamostore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/zstd"

	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

// endpoint is the DynamoDB Local server every test in this package uses.
var endpoint string

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
		o.HTTPClient = &http.Client{Transport: tr}
	})
}

var tableSeq atomic.Int64

// newTable creates a table of its own for the test and returns an option
// function naming it, followed by optFns.
func newTable(tb testing.TB, optFns ...func(*Options)) []func(*Options) {
	tb.Helper()
	// The process ID keeps fuzzing workers, which are processes of their
	// own sharing one server, on tables of their own.
	name := fmt.Sprintf("t%d-%d-%s", os.Getpid(), tableSeq.Add(1), regexp.MustCompile(`[^a-zA-Z0-9_.-]`).ReplaceAllString(tb.Name(), "_"))
	if len(name) > 200 {
		name = name[:200]
	}
	fns := append([]func(*Options){func(o *Options) { o.TableName = name }}, optFns...)
	client := newClient(tb)
	ctx := context.Background()
	// Quiet: on dynalite every table would log that TTL is off.
	quiet := func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) }
	if err := CreateTable(ctx, client, append(fns[:len(fns):len(fns)], quiet)...); err != nil {
		tb.Fatalf("CreateTable: %v", err)
	}
	tb.Cleanup(func() {
		client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return fns
}

// newStore returns a store without a sweeper on a new table of its own,
// calling through client when it is not nil.
func newStore(t *testing.T, client Client, optFns ...func(*Options)) *DynamoStore {
	t.Helper()
	fns := newTable(t, optFns...)
	if client == nil {
		client = newClient(t)
	}
	s := NewWithCleanupInterval(client, 0, fns...)
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
	hook := c.beforeDelete
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	if hook != nil {
		if err := hook(ctx, in); err != nil {
			return nil, err
		}
	}
	return c.Client.DeleteItem(ctx, in, optFns...)
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

// syncBuffer is a bytes.Buffer safe for a logger used from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

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
func clockAhead(o *Options) { o.now = func() time.Time { return time.Now().Add(2 * time.Hour) } }

func expiredAt() time.Time { return time.Now().Add(time.Hour) }
func liveAt() time.Time    { return time.Now().Add(3 * time.Hour) }

func TestFind(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.Commit("session_token", []byte("encoded_data"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	b, found, err := s.Find("session_token")
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("got %v: expected %v", found, true)
	}
	if !bytes.Equal(b, []byte("encoded_data")) {
		t.Fatalf("got %q: expected %q", b, "encoded_data")
	}
}

func TestFindMissing(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	b, found, err := s.Find("missing_session_token")
	if err != nil {
		t.Fatalf("got %v: expected %v", err, nil)
	}
	if found || b != nil {
		t.Fatalf("got %v, %q: expected not found", found, b)
	}
}

func TestFindOneConsistentGetItem(t *testing.T) {
	t.Parallel()
	for _, consistent := range []bool{true, false} {
		spy := &spyClient{Client: newClient(t)}
		s := newStore(t, spy, func(o *Options) { o.ConsistentRead = consistent })
		if _, _, err := s.Find("token"); err != nil {
			t.Fatal(err)
		}
		if n := spy.gets.Load() + spy.puts.Load() + spy.deletes.Load() + spy.scans.Load(); n != 1 || spy.gets.Load() != 1 {
			t.Fatalf("got %d requests, %d GetItem: expected one GetItem", n, spy.gets.Load())
		}
		if got := aws.ToBool(spy.lastGet.ConsistentRead); got != consistent {
			t.Fatalf("got ConsistentRead %v: expected %v", got, consistent)
		}
	}
}

func TestConsistentReadDefault(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(newClient(t), 0)
	if !*s.consistent {
		t.Fatalf("got ConsistentRead %v: expected %v", *s.consistent, true)
	}
	if s.tableName != "sessions" || s.keyAttr != "session_key" || s.dataAttr != "data" || s.expiryAttr != "expires" || s.prefix != "" {
		t.Fatalf("got defaults %q %q %q %q %q", s.tableName, s.keyAttr, s.dataAttr, s.expiryAttr, s.prefix)
	}
}

func TestFindUnstorableTokens(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy, func(o *Options) { o.KeyPrefix = "app:" })
	tokens := map[string]string{
		"empty":              "",
		"invalid UTF-8":      "abc\xff",
		"over 2048 bytes":    strings.Repeat("a", 2049),
		"prefix over limit":  strings.Repeat("a", 2048-len("app:")+1),
		"lone continuation":  "\x80",
		"truncated sequence": "\xe2\x82",
	}
	for name, token := range tokens {
		b, found, err := s.Find(token)
		if err != nil || found || b != nil {
			t.Fatalf("%s: got %q, %v, %v: expected not found and no error", name, b, found, err)
		}
		if err := s.Delete(token); err != nil {
			t.Fatalf("%s: Delete got %v: expected nil", name, err)
		}
		if err := s.Commit(token, []byte("x"), time.Now().Add(time.Minute)); err == nil {
			t.Fatalf("%s: Commit got nil error: expected one", name)
		} else if strings.Contains(err.Error(), token) && token != "" {
			t.Fatalf("%s: error %q carries the token", name, err)
		}
	}
	if n := spy.gets.Load() + spy.puts.Load() + spy.deletes.Load(); n != 0 {
		t.Fatalf("got %d requests: expected none for unstorable tokens", n)
	}

	// The longest key DynamoDB holds still works.
	longest := strings.Repeat("é", (2048-len("app:"))/2)
	if err := s.Commit(longest, []byte("x"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Find(longest); err != nil || !found {
		t.Fatalf("got %v, %v: expected the 2048-byte key to be found", found, err)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	expiry := time.Now().Add(1500 * time.Millisecond)
	if err := s.Commit("session_token", []byte("encoded_data"), expiry); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Find("session_token"); !found {
		t.Fatalf("got %v: expected %v", found, true)
	}
	time.Sleep(time.Until(expiry))
	if _, found, err := s.Find("session_token"); found || err != nil {
		t.Fatalf("got %v, %v: expected not found once the expiry has passed", found, err)
	}
}

func TestExpiryBoundaries(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	expiry := time.Unix(time.Now().Unix()+3600, 700_000_000) // x.7 s
	if err := s.Commit("token", []byte("data"), expiry); err != nil {
		t.Fatal(err)
	}
	if got := rawItem(t, s, "token")["expires"].(*types.AttributeValueMemberN).Value; got != strconv.FormatInt(expiry.Unix(), 10) {
		t.Fatalf("got stored expiry %s: expected whole seconds %d", got, expiry.Unix())
	}
	cases := []struct {
		now   time.Time
		found bool
	}{
		{expiry.Add(-time.Second), true},                          // a second early is still live
		{time.Unix(expiry.Unix(), 0).Add(-time.Nanosecond), true}, // last instant before the whole second
		{time.Unix(expiry.Unix(), 0), false},                      // up to a second early: the stored second
		{expiry, false},
		{expiry.Add(time.Nanosecond), false}, // never after the expiry
	}
	for _, c := range cases {
		s.now = func() time.Time { return c.now }
		if _, found, err := s.Find("token"); err != nil || found != c.found {
			t.Fatalf("at %v: got %v, %v: expected %v", c.now, found, err, c.found)
		}
		all, err := s.All()
		if err != nil || (len(all) == 1) != c.found {
			t.Fatalf("All at %v: got %d sessions, %v: expected found=%v", c.now, len(all), err, c.found)
		}
	}
}

func TestFindExpiredItemStillInTable(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil, clockAhead)
	if err := s.Commit("token", []byte("data"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if rawItem(t, s, "token") == nil {
		t.Fatal("expected the expired item in the table")
	}
	if _, found, err := s.Find("token"); found || err != nil {
		t.Fatalf("got %v, %v: expected not found", found, err)
	}
}

func TestCommitPastExpiry(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	for _, expiry := range []time.Time{time.Now().Add(-time.Hour), {}} {
		if err := s.Commit("token", []byte("data"), expiry); err != nil {
			t.Fatalf("got %v: expected a past expiry to be accepted", err)
		}
		if _, found, err := s.Find("token"); found || err != nil {
			t.Fatalf("got %v, %v: expected not found", found, err)
		}
	}
}

func TestItemLayout(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil, func(o *Options) {
		o.KeyPrefix = "shop:"
		o.KeyAttribute = "k"
		o.DataAttribute = "d"
		o.ExpiryAttribute = "x"
	})
	data := []byte{0, 1, 2, 0xff, 'g', 'o', 'b'}
	expiry := time.Now().Add(time.Hour)
	if err := s.Commit("token", data, expiry); err != nil {
		t.Fatal(err)
	}
	item := rawItem(t, s, "shop:token")
	if len(item) != 3 {
		t.Fatalf("got %d attributes: expected 3", len(item))
	}
	if got := item["d"].(*types.AttributeValueMemberB).Value; !bytes.Equal(got, data) {
		t.Fatalf("got data %v: expected exactly %v", got, data)
	}
	if got := item["x"].(*types.AttributeValueMemberN).Value; got != strconv.FormatInt(expiry.Unix(), 10) {
		t.Fatalf("got expiry %s: expected %d", got, expiry.Unix())
	}
}

func TestCommitUpdated(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy)
	if err := s.Commit("token", []byte("old"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := s.Commit("token", []byte("new"), later); err != nil {
		t.Fatal(err)
	}
	if spy.puts.Load() != 2 || spy.gets.Load() != 0 {
		t.Fatalf("got %d PutItem, %d GetItem: expected 2 and no read before a write", spy.puts.Load(), spy.gets.Load())
	}
	b, found, err := s.Find("token")
	if err != nil || !found || string(b) != "new" {
		t.Fatalf("got %q, %v, %v: expected %q", b, found, err, "new")
	}
	if got := rawItem(t, s, "token")["expires"].(*types.AttributeValueMemberN).Value; got != strconv.FormatInt(later.Unix(), 10) {
		t.Fatalf("got expiry %s: expected %d", got, later.Unix())
	}
}

func TestCommitEmptyData(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	for _, data := range [][]byte{nil, {}} {
		if err := s.Commit("token", data, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		b, found, err := s.Find("token")
		if err != nil || !found || len(b) != 0 {
			t.Fatalf("got %q, %v, %v: expected empty data, found", b, found, err)
		}
	}
}

func TestCommitTooLarge(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "a-longer-prefix:"} {
		spy := &spyClient{Client: newClient(t)}
		s := newStore(t, spy, func(o *Options) { o.KeyPrefix = prefix })
		expiry := time.Now().Add(time.Hour)
		if err := s.Commit("token", []byte("previous"), expiry); err != nil {
			t.Fatal(err)
		}
		exp := strconv.FormatInt(expiry.Unix(), 10)
		// The largest data that fits, by DynamoDB's own count: DynamoDB Local
		// must accept it, so the store is not stricter than DynamoDB.
		fits := maxItemBytes - len("session_key") - len(prefix+"token") - len("data") - len("expires") - numberSize(exp)
		big := bytes.Repeat([]byte{'x'}, fits)
		if err := s.Commit("tokex", big, expiry); err != nil { // a key as long as "token"
			t.Fatalf("got %v: expected an item of exactly 400 KB to be stored", err)
		}
		puts := spy.puts.Load()
		err := s.Commit("token", append(big, 'y'), expiry)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v: expected ErrTooLarge", err)
		}
		if spy.puts.Load() != puts {
			t.Fatal("expected no request for a session that is too large")
		}
		if !strings.Contains(err.Error(), s.tableName) {
			t.Fatalf("got %q: expected the table name", err)
		}
		b, found, err := s.Find("token")
		if err != nil || !found || string(b) != "previous" {
			t.Fatalf("got %q, %v, %v: expected the previous data", b, found, err)
		}
	}
}

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

func TestCompress(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	plain := NewWithCleanupInterval(client, 0, fns...)
	compressing := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.CompressAbove = 1024 })...)
	expiry := time.Now().Add(time.Hour)
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}

	cases := []struct {
		name       string
		data       []byte
		compressed bool
	}{
		{"small", gobSession(t, 500, 1)[:500], false},
		{"at threshold", gobSession(t, 1024, 2)[:1024], true},
		{"4 KB", gobSession(t, 4096, 3), true},
		{"incompressible", random, false},
	}
	for _, c := range cases {
		if err := compressing.Commit(c.name, c.data, expiry); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		item := rawItem(t, compressing, c.name)
		_, hasRaw := item["data"]
		z, hasZ := item["data_zstd"].(*types.AttributeValueMemberB)
		if hasZ == hasRaw || hasZ != c.compressed {
			t.Fatalf("%s: got attributes %v: expected compressed=%v in exactly one attribute", c.name, slices.Collect(maps.Keys(item)), c.compressed)
		}
		if hasZ && len(z.Value) >= len(c.data) {
			t.Fatalf("%s: got %d compressed bytes from %d: expected fewer", c.name, len(z.Value), len(c.data))
		}
		// Both stores read both formats: turning the option on or off
		// needs no migration.
		for _, s := range []*DynamoStore{compressing, plain} {
			if b, found, err := s.Find(c.name); err != nil || !found || !bytes.Equal(b, c.data) {
				t.Fatalf("%s: got %d bytes, %v, %v: expected the data back", c.name, len(b), found, err)
			}
		}
	}
	// All decodes both kinds too.
	all, err := plain.All()
	if err != nil || len(all) != len(cases) {
		t.Fatalf("got %d sessions, %v: expected %d", len(all), err, len(cases))
	}
	for _, c := range cases {
		if !bytes.Equal(all[c.name], c.data) {
			t.Fatalf("All: %s: got %d bytes: expected the data back", c.name, len(all[c.name]))
		}
	}
	// A plain item written before the option was on reads through the
	// compressing store, and committing it again compresses it.
	data := gobSession(t, 4096, 4)
	if err := plain.Commit("old", data, expiry); err != nil {
		t.Fatal(err)
	}
	if b, found, err := compressing.Find("old"); err != nil || !found || !bytes.Equal(b, data) {
		t.Fatalf("got %d bytes, %v, %v: expected the plain item read", len(b), found, err)
	}
	if err := compressing.Commit("old", data, expiry); err != nil {
		t.Fatal(err)
	}
	if item := rawItem(t, compressing, "old"); item["data"] != nil || item["data_zstd"] == nil {
		t.Fatal("expected the recommitted item compressed, with no plain data left")
	}

	// Compression lets a session larger than the item limit fit...
	large := bytes.Repeat(gobSession(t, 4096, 5), 200) // 800 KB
	if err := plain.Commit("large", large, expiry); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v: expected ErrTooLarge without compression", err)
	}
	if err := compressing.Commit("large", large, expiry); err != nil {
		t.Fatalf("got %v: expected 800 KB of compressible data to fit", err)
	}
	if b, _, err := plain.Find("large"); err != nil || !bytes.Equal(b, large) {
		t.Fatalf("got %d bytes, %v: expected the large session back", len(b), err)
	}
	// ...but never one that would expand past the decoder's bound.
	if err := compressing.Commit("huge", make([]byte, maxDecodedBytes+1), expiry); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v: expected ErrTooLarge above %d bytes", err, maxDecodedBytes)
	}
	if item := rawItem(t, compressing, "huge"); item != nil {
		t.Fatal("expected nothing written for a session over the bound")
	}
}

func TestDecodeCompressedCorrupt(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(nil, 0)
	exp := &types.AttributeValueMemberN{Value: "4000000000"}
	bomb := zstdEncoder().EncodeAll(make([]byte, maxDecodedBytes+1), nil)
	// The same without the content size in the frame header, as a stream.
	var streamed bytes.Buffer
	w, _ := zstd.NewWriter(&streamed)
	w.Write(make([]byte, maxDecodedBytes+1))
	w.Close()
	good := zstdEncoder().EncodeAll([]byte("session"), nil)
	for name, z := range map[string][]byte{
		"not zstd":  []byte("definitely not a zstd frame"),
		"truncated": good[:len(good)-3],
		"bomb":      bomb,
		"streamed":  streamed.Bytes(),
		"empty":     {},
	} {
		_, _, err := s.decode(map[string]types.AttributeValue{"data_zstd": &types.AttributeValueMemberB{Value: z}, "expires": exp})
		if err == nil || !strings.Contains(err.Error(), `attribute "data_zstd" is not zstd data`) {
			t.Fatalf("%s: got %v: expected a corrupt-item error", name, err)
		}
	}
	if b, _, err := s.decode(map[string]types.AttributeValue{"data_zstd": &types.AttributeValueMemberB{Value: good}, "expires": exp}); err != nil || string(b) != "session" {
		t.Fatalf("got %q, %v: expected the data", b, err)
	}
}

func TestNumberSize(t *testing.T) {
	t.Parallel()
	// Measured against DynamoDB Local 3.3.1, which counts 1 byte per two
	// significant digits plus 1.
	for digits, want := range map[string]int{"0": 1, "1": 2, "12": 2, "1795000000": 3, "17950000001": 7, "179500000012": 7, "1795123456": 6} {
		if got := numberSize(digits); got != want {
			t.Fatalf("numberSize(%s) got %d: expected %d", digits, got, want)
		}
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.Commit("token", []byte("data"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("token"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Find("token"); found || err != nil {
		t.Fatalf("got %v, %v: expected not found", found, err)
	}
	if rawItem(t, s, "token") != nil {
		t.Fatal("expected the item gone from the table")
	}
}

func TestDeleteMissing(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	for _, token := range []string{"missing", ""} {
		if err := s.Delete(token); err != nil {
			t.Fatalf("Delete(%q) got %v: expected nil", token, err)
		}
	}
}

func TestAll(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	a := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.KeyPrefix = "a:" })...)
	b := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.KeyPrefix = "b:" })...)
	bare := NewWithCleanupInterval(client, 0, fns...)

	got, err := a.All()
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("got %v, %v: expected an empty non-nil map", got, err)
	}
	future, past := time.Now().Add(time.Hour), time.Now().Add(-time.Hour)
	for _, c := range []struct {
		s      *DynamoStore
		token  string
		expiry time.Time
	}{
		{a, "one", future}, {a, "two", future}, {a, "old", past},
		{b, "one", future}, {b, "three", future},
	} {
		if err := c.s.Commit(c.token, []byte(c.s.prefix+c.token), c.expiry); err != nil {
			t.Fatal(err)
		}
	}
	got, err = a.AllCtx(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"one": "a:one", "two": "a:two"}
	if len(got) != len(want) {
		t.Fatalf("got %d sessions: expected %d", len(got), len(want))
	}
	for token, data := range want {
		if string(got[token]) != data {
			t.Fatalf("got %q for %q: expected %q", got[token], token, data)
		}
	}
	if all, err := bare.All(); err != nil || len(all) != 4 || string(all["b:three"]) != "b:three" {
		t.Fatalf("got %v, %v: expected the four live sessions keyed with their prefixes", all, err)
	}
}

func TestAllPaginates(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy)
	// 30 sessions of 40 KB: over DynamoDB's 1 MB Scan page.
	const n = 30
	data := bytes.Repeat([]byte{'z'}, 40<<10)
	for i := range n {
		if err := s.Commit(fmt.Sprintf("token-%d", i), data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("got %d sessions: expected %d", len(got), n)
	}
	if spy.scans.Load() < 2 {
		t.Fatalf("got %d Scan pages: expected more than one", spy.scans.Load())
	}
}

func TestCorruptItems(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s := newStore(t, nil, withLogger(&logs))
	const secret = "secret-session-bytes"
	future := &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)}
	cases := []struct {
		token string
		item  map[string]types.AttributeValue
		attr  string
	}{
		{"tok-no-data", map[string]types.AttributeValue{"expires": future}, "data"},
		{"tok-string-data", map[string]types.AttributeValue{"data": &types.AttributeValueMemberS{Value: secret}, "expires": future}, "data"},
		{"tok-no-expiry", map[string]types.AttributeValue{"data": &types.AttributeValueMemberB{Value: []byte(secret)}}, "expires"},
		{"tok-string-expiry", map[string]types.AttributeValue{"data": &types.AttributeValueMemberB{Value: []byte(secret)}, "expires": &types.AttributeValueMemberS{Value: "soon"}}, "expires"},
	}
	for _, c := range cases {
		c.item["session_key"] = &types.AttributeValueMemberS{Value: c.token}
		putRaw(t, s, c.item)
		_, found, err := s.Find(c.token)
		if err == nil || found {
			t.Fatalf("%s: got %v, %v: expected an error", c.token, found, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, s.tableName) || !strings.Contains(msg, fmt.Sprintf("%q", c.attr)) {
			t.Fatalf("%s: got %q: expected the table and attribute %q named", c.token, msg, c.attr)
		}
		if strings.Contains(msg, c.token) || strings.Contains(msg, secret) {
			t.Fatalf("%s: got %q: expected neither token nor data in the error", c.token, msg)
		}
	}
	if err := s.Commit("good", []byte("fine"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	all, err := s.All()
	if err != nil {
		t.Fatalf("got %v: expected All to skip corrupt items", err)
	}
	if len(all) != 1 || string(all["good"]) != "fine" {
		t.Fatalf("got %v: expected only the good session", all)
	}
	out := logs.String()
	if strings.Count(out, "cannot be decoded") != len(cases) {
		t.Fatalf("got log %q: expected a line per corrupt item", out)
	}
	for _, c := range cases {
		if strings.Contains(out, c.token) || strings.Contains(out, secret) {
			t.Fatalf("got log %q: expected neither tokens nor data", out)
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(nil, 0)
	data := &types.AttributeValueMemberB{Value: []byte("d")}
	for v, want := range map[string]int64{"10": 10, "10.9": 10, "-1.5": -2, "1e3": 1000, "1e400": 0} {
		exp, err := parseExpiry(v)
		if v == "1e400" {
			if err != nil || exp != 1<<63-1 {
				t.Fatalf("parseExpiry(%s) got %d, %v: expected the largest expiry", v, exp, err)
			}
			continue
		}
		if err != nil || exp != want {
			t.Fatalf("parseExpiry(%s) got %d, %v: expected %d", v, exp, err, want)
		}
	}
	for _, v := range []string{"", "abc", "NaN", "0x10"} {
		if _, _, err := s.decode(map[string]types.AttributeValue{"data": data, "expires": &types.AttributeValueMemberN{Value: v}}); err == nil {
			t.Fatalf("decode with expiry %q got nil error: expected one", v)
		}
	}
	if _, _, err := s.decode(nil); err == nil {
		t.Fatal("decode(nil) got nil error: expected one")
	}
}

func TestMissingTable(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(newClient(t), 0, func(o *Options) { o.TableName = "no-such-table" })
	_, _, errFind := s.Find("token")
	errCommit := s.Commit("token", []byte("data"), time.Now().Add(time.Minute))
	errDelete := s.Delete("token")
	_, errAll := s.All()
	_, errSweep := s.DeleteExpired(context.Background())
	for op, err := range map[string]error{"find": errFind, "commit": errCommit, "delete": errDelete, "all": errAll, "delete expired": errSweep} {
		var notFound *types.ResourceNotFoundException
		if !errors.As(err, &notFound) {
			t.Fatalf("%s: got %v: expected a ResourceNotFoundException", op, err)
		}
		msg := err.Error()
		for _, want := range []string{"dynamostore: " + op, `table "no-such-table"`, "does not exist", "CreateTable"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("%s: got %q: expected it to contain %q", op, msg, want)
			}
		}
	}
}

func TestContextHonoured(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	if err := s.Commit("token", []byte("data"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	for _, c := range []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}} {
		_, _, errFind := s.FindCtx(c.ctx, "token")
		errCommit := s.CommitCtx(c.ctx, "token", []byte("new"), time.Now().Add(time.Minute))
		errDelete := s.DeleteCtx(c.ctx, "token")
		_, errAll := s.AllCtx(c.ctx)
		_, errSweep := s.DeleteExpired(c.ctx)
		for op, err := range map[string]error{"find": errFind, "commit": errCommit, "delete": errDelete, "all": errAll, "delete expired": errSweep} {
			if !errors.Is(err, c.want) {
				t.Fatalf("%s: got %v: expected %v", op, err, c.want)
			}
			if !strings.Contains(err.Error(), "dynamostore: "+op) || !strings.Contains(err.Error(), s.tableName) {
				t.Fatalf("%s: got %q: expected the operation and table", op, err)
			}
		}
	}
	if b, found, err := s.Find("token"); err != nil || !found || string(b) != "data" {
		t.Fatalf("got %q, %v, %v: expected the session untouched", b, found, err)
	}
}

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	s := NewWithCleanupInterval(client, 0, append(fns, clockAhead, func(o *Options) { o.KeyPrefix = "mine:" })...)
	other := NewWithCleanupInterval(client, 0, append(fns, clockAhead, func(o *Options) { o.KeyPrefix = "other:" })...)
	past, future := expiredAt(), liveAt()
	const expiredCount = 120
	for i := range expiredCount {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), past); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		s      *DynamoStore
		token  string
		expiry time.Time
	}{{s, "live", future}, {other, "old", past}, {other, "live", future}} {
		if err := c.s.Commit(c.token, []byte("x"), c.expiry); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != expiredCount {
		t.Fatalf("got %d deleted: expected %d", n, expiredCount)
	}
	if rawItem(t, s, "mine:old-7") != nil {
		t.Fatal("expected the expired session deleted")
	}
	if rawItem(t, s, "mine:live") == nil || rawItem(t, s, "other:live") == nil {
		t.Fatal("expected live sessions kept")
	}
	if rawItem(t, s, "other:old") == nil {
		t.Fatal("expected another prefix's expired session untouched")
	}
	if n, err := s.DeleteExpired(context.Background()); n != 0 || err != nil {
		t.Fatalf("second sweep got %d, %v: expected 0, nil", n, err)
	}
}

func TestDeleteExpiredKeepsRecommitted(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy, clockAhead)
	if err := s.Commit("revived", []byte("old"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("dead", []byte("old"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	spy.beforeDelete = func(ctx context.Context, in *dynamodb.DeleteItemInput) error {
		var err error
		if in.Key["session_key"].(*types.AttributeValueMemberS).Value == "revived" {
			// The user comes back between the sweeper's Scan and its delete.
			once.Do(func() { err = s.CommitCtx(ctx, "revived", []byte("new"), liveAt()) })
		}
		return err
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("got %d deleted: expected 1", n)
	}
	b, found, err := s.Find("revived")
	if err != nil || !found || string(b) != "new" {
		t.Fatalf("got %q, %v, %v: expected the re-committed session to survive", b, found, err)
	}
	if rawItem(t, s, "dead") != nil {
		t.Fatal("expected the expired session deleted")
	}
}

// TestSweepClockSkew runs the sweeper on one store while another, whose clock
// differs by up to a minute, serves the same sessions: the sweeper must not
// delete any session the other still finds. Clocks are fixed, two hours
// ahead, so neither the wall clock nor DynamoDB Local's own TTL moves them.
func TestSweepClockSkew(t *testing.T) {
	t.Parallel()
	base := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		name          string
		sweeper, peer time.Duration // offsets from base
		grace         time.Duration
		wantUnsafe    bool // without enough grace the sweep must be caught
	}{
		{"sweeper a minute ahead", time.Minute, 0, 0, false},
		{"sweeper 30s ahead, peer 30s behind", 30 * time.Second, -30 * time.Second, 0, false},
		{"sweeper a minute behind", -time.Minute, 0, 0, false},
		{"sweeper 59.9s ahead, mid-second", time.Minute - 100*time.Millisecond, 0, 0, false},
		// The control: no grace and a fast clock deletes live sessions,
		// so this test can tell.
		{"no grace", time.Minute, 0, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := func(d time.Duration) func(*Options) {
				return func(o *Options) { o.now = func() time.Time { return base.Add(d) } }
			}
			fns := newTable(t)
			client := newClient(t)
			sweeper := NewWithCleanupInterval(client, 0, append(fns, clock(tc.sweeper), func(o *Options) {
				if tc.grace != 0 {
					o.SweepGrace = tc.grace
				}
			})...)
			peer := NewWithCleanupInterval(client, 0, append(fns, clock(tc.peer))...)
			writer := NewWithCleanupInterval(client, 0, fns...) // the real clock: all are in its future

			// A session every 5 s from three minutes before base to
			// three after.
			expiries := map[string]time.Time{}
			for off := -180; off <= 180; off += 5 {
				token := fmt.Sprintf("s%+d", off)
				expiries[token] = base.Add(time.Duration(off) * time.Second)
				if err := writer.Commit(token, []byte(token), expiries[token]); err != nil {
					t.Fatal(err)
				}
			}
			deleted, err := sweeper.DeleteExpired(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if deleted == 0 {
				t.Fatal("expected the sweep to delete the sessions long expired for both")
			}
			var lost []string
			for token, exp := range expiries {
				if !exp.After(base.Add(tc.peer)) {
					continue // expired for the peer: it may go
				}
				if _, found, err := peer.Find(token); err != nil {
					t.Fatal(err)
				} else if !found {
					lost = append(lost, token)
				}
			}
			if tc.wantUnsafe {
				if len(lost) == 0 {
					t.Fatal("expected a sweep without grace to delete sessions the peer still serves")
				}
				return
			}
			if len(lost) > 0 {
				t.Fatalf("sweeper deleted %d sessions the peer still serves: %v", len(lost), lost)
			}
		})
	}
}

func TestDeleteExpiredWorkers(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy, clockAhead)
	for i := range 100 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	// The first delete waits for a second one to start: the sweep must run
	// deletes concurrently.
	second := make(chan struct{})
	var calls atomic.Int64
	spy.beforeDelete = func(ctx context.Context, _ *dynamodb.DeleteItemInput) error {
		switch calls.Add(1) {
		case 1:
			select {
			case <-second:
			case <-time.After(10 * time.Second):
				return errors.New("no second delete ran concurrently")
			}
		case 2:
			close(second)
		}
		return nil
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil || n != 100 {
		t.Fatalf("got %d, %v: expected 100 deleted", n, err)
	}
	if spy.max > sweepWorkers {
		t.Fatalf("got %d deletes in flight: expected at most %d", spy.max, sweepWorkers)
	}
	// The sweep's Scan reads only the key and the expiry.
	in := spy.lastScan
	if got := aws.ToString(in.ProjectionExpression); got != "#k, #e" || in.ExpressionAttributeNames["#k"] != "session_key" || in.ExpressionAttributeNames["#e"] != "expires" {
		t.Fatalf("got projection %q with %v: expected key and expiry only", got, in.ExpressionAttributeNames)
	}
}

func TestDeleteExpiredSegments(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy, clockAhead, func(o *Options) { o.SweepSegments = 4 })
	for i := range 100 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpired(context.Background())
	if err != nil || n != 100 {
		t.Fatalf("got %d, %v: expected 100 deleted", n, err)
	}
	if len(spy.segments) != 4 {
		t.Fatalf("got segments %v: expected 0 to 3", spy.segments)
	}
}

func TestDeleteExpiredReadRate(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	// 20 units a second; 40 items of 40 KB, about 200 units to read.
	const rate = 20
	s := newStore(t, spy, clockAhead, func(o *Options) { o.SweepReadRate = rate })
	data := bytes.Repeat([]byte{'z'}, 40<<10)
	for i := range 40 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), data, expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	n, err := s.DeleteExpired(context.Background())
	if err != nil || n != 40 {
		t.Fatalf("got %d, %v: expected 40 deleted", n, err)
	}
	if aws.ToString((*string)(&spy.lastScan.ReturnConsumedCapacity)) != "TOTAL" || spy.readUnits == 0 {
		t.Fatalf("got %v units reported: expected the Scan to ask for consumed capacity", spy.readUnits)
	}
	// The first page's units up to maxPageReadUnits pass at once; the rest
	// wait at the rate.
	if minWait := time.Duration((spy.readUnits - maxPageReadUnits) / rate * float64(time.Second)); time.Since(start) < minWait {
		t.Fatalf("swept %v units in %v: expected at least %v at %d units a second", spy.readUnits, time.Since(start), minWait, rate)
	}
	t.Logf("%v read units in %v", spy.readUnits, time.Since(start))
}

func TestDeleteExpiredThrottled(t *testing.T) {
	t.Parallel()
	spy := &spyClient{Client: newClient(t)}
	s := newStore(t, spy, clockAhead)
	for i := range 5 {
		if err := s.Commit(fmt.Sprintf("old-%d", i), []byte("x"), expiredAt()); err != nil {
			t.Fatal(err)
		}
	}
	var throttled atomic.Int64
	spy.beforeDelete = func(context.Context, *dynamodb.DeleteItemInput) error {
		if throttled.Add(1) <= 6 {
			return &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}
		}
		return nil
	}
	start := time.Now()
	n, err := s.DeleteExpired(context.Background())
	if err != nil || n != 5 {
		t.Fatalf("got %d, %v: expected all 5 deleted after backing off", n, err)
	}
	if elapsed := time.Since(start); elapsed < throttleBackoff {
		t.Fatalf("took %v: expected a back-off of at least %v", elapsed, throttleBackoff)
	}

	// Any other error ends the sweep with the operation, table and cause.
	spy.mu.Lock()
	spy.beforeDelete = func(context.Context, *dynamodb.DeleteItemInput) error {
		return &types.InternalServerError{Message: aws.String("boom")}
	}
	spy.mu.Unlock()
	if err := s.Commit("old-x", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	_, err = s.DeleteExpired(context.Background())
	var ise *types.InternalServerError
	if !errors.As(err, &ise) || !strings.Contains(err.Error(), "dynamostore: delete expired in table "+strconv.Quote(s.tableName)) {
		t.Fatalf("got %v: expected the cause wrapped with operation and table", err)
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	s := NewWithCleanupInterval(newClient(t), 50*time.Millisecond, append(fns, clockAhead)...)
	defer s.StopCleanup()
	if err := s.Commit("old", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("live", []byte("x"), liveAt()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for rawItem(t, s, "old") != nil {
		if time.Now().After(deadline) {
			t.Fatal("expected the sweeper to delete the expired session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rawItem(t, s, "live") == nil {
		t.Fatal("expected the live session kept")
	}
}

func TestCleanupLogsErrors(t *testing.T) {
	t.Parallel()
	// With the lease, the lease's PutItem meets the missing table first.
	for lease, want := range map[bool]string{true: "sweep skipped", false: "sweep failed"} {
		var logs syncBuffer
		s := NewWithCleanupInterval(newClient(t), 20*time.Millisecond, withLogger(&logs), func(o *Options) {
			o.TableName = "no-such-table"
			o.SweepLease = lease
		})
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(logs.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("expected the sweeper to log %q", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.StopCleanup()
		if !strings.Contains(logs.String(), "no-such-table") || !strings.Contains(logs.String(), "does not exist") {
			t.Fatalf("got log %q: expected the table and the cause", logs.String())
		}
	}
}

// sweepRecorder records which store ran a sweep's Scan, and when.
type sweepRecorder struct {
	mu     sync.Mutex
	sweeps []sweepRecord
}

type sweepRecord struct {
	store int
	at    time.Time
}

type recordingClient struct {
	Client
	id  int
	rec *sweepRecorder
}

func (c recordingClient) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if in.ProjectionExpression != nil && in.ExclusiveStartKey == nil { // a sweep's first page
		c.rec.mu.Lock()
		c.rec.sweeps = append(c.rec.sweeps, sweepRecord{c.id, time.Now()})
		c.rec.mu.Unlock()
	}
	return c.Client.Scan(ctx, in, optFns...)
}

func (r *sweepRecorder) snapshot() []sweepRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sweepRecord(nil), r.sweeps...)
}

// waitSweeps polls until cond holds for the recorded sweeps.
func (r *sweepRecorder) waitSweeps(t *testing.T, what string, cond func([]sweepRecord) bool) []sweepRecord {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sw := r.snapshot()
		if cond(sw) {
			return sw
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s: got %d sweeps", what, len(sw))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFleetSweepsOncePerInterval(t *testing.T) {
	t.Parallel()
	const interval = 400 * time.Millisecond
	fns := newTable(t)
	client := newClient(t)
	rec := &sweepRecorder{}
	stores := make([]*DynamoStore, 5)
	for i := range stores {
		stores[i] = NewWithCleanupInterval(recordingClient{client, i, rec}, interval, fns...)
		defer stores[i].StopCleanup()
	}
	sweeps := rec.waitSweeps(t, "8 sweeps", func(sw []sweepRecord) bool { return len(sw) >= 8 })
	for i := 1; i < len(sweeps); i++ {
		// A lease lasts one interval; allow for ticker and request jitter.
		if gap := sweeps[i].at.Sub(sweeps[i-1].at); gap < interval-100*time.Millisecond {
			t.Fatalf("sweeps %d and %d by stores %d and %d were %v apart: expected one per %v",
				i-1, i, sweeps[i-1].store, sweeps[i].store, gap, interval)
		}
	}

	// Stop the holder: another store takes the lease and sweeps.
	holder := sweeps[len(sweeps)-1].store
	stores[holder].StopCleanup()
	stopped := time.Now()
	after := rec.waitSweeps(t, "a sweep by another store", func(sw []sweepRecord) bool {
		return sw[len(sw)-1].at.After(stopped)
	})
	for _, sw := range after {
		if sw.store == holder && sw.at.After(stopped) {
			t.Fatal("the stopped store swept")
		}
	}

	// The lease item is no session.
	s := stores[(holder+1)%len(stores)]
	if _, found, err := s.Find(leaseToken); found || err != nil {
		t.Fatalf("got %v, %v: expected the lease not found", found, err)
	}
	if all, err := s.All(); err != nil || len(all) != 0 {
		t.Fatalf("got %v, %v: expected no sessions", all, err)
	}
	if err := s.Commit(leaseToken, []byte("x"), time.Now().Add(time.Hour)); err == nil {
		t.Fatal("expected Commit to refuse the lease's token")
	}
}

func TestSweepLeaseLapses(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	crashed := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.CleanupInterval = 0 })...)
	crashed.interval = time.Hour // as if its sweeper took the lease and died
	if held, err := crashed.acquireLease(context.Background()); !held || err != nil {
		t.Fatalf("got %v, %v: expected the lease", held, err)
	}
	other := NewWithCleanupInterval(client, 0, fns...)
	other.interval = time.Minute
	if held, err := other.acquireLease(context.Background()); held || err != nil {
		t.Fatalf("got %v, %v: expected the lease held by the other store", held, err)
	}
	other.now = func() time.Time { return time.Now().Add(time.Hour) }
	if held, err := other.acquireLease(context.Background()); !held || err != nil {
		t.Fatalf("got %v, %v: expected the lapsed lease taken over", held, err)
	}
}

func TestStopCleanup(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(newClient(t), time.Hour)
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); s.StopCleanup() }()
	}
	wg.Wait()
	select {
	case <-s.sweeperDone:
	default:
		t.Fatal("expected the sweeper to have exited when StopCleanup returned")
	}
	s.StopCleanup() // and again, later
}

func TestStopNilCleanup(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(newClient(t), 0)
	s.StopCleanup()
	if s.sweeperDone != nil {
		t.Fatal("expected no sweeper with interval 0")
	}
	s = New(newClient(t), func(o *Options) { o.CleanupInterval = 0 })
	s.StopCleanup()
	if s.sweeperDone != nil {
		t.Fatal("expected an option to disable the sweeper")
	}
}

func TestStopCleanupCancelsSweep(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	var once sync.Once
	spy := &spyClient{Client: newClient(t)}
	spy.beforeDelete = func(ctx context.Context, in *dynamodb.DeleteItemInput) error {
		if in.Key["session_key"].(*types.AttributeValueMemberS).Value == leaseToken {
			return nil // let StopCleanup release the lease
		}
		once.Do(func() { close(started) })
		<-ctx.Done() // hold the sweep until StopCleanup cancels it
		return ctx.Err()
	}
	fns := newTable(t)
	s := NewWithCleanupInterval(spy, 10*time.Millisecond, append(fns, clockAhead)...)
	if err := s.Commit("old", []byte("x"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("expected a sweep to start")
	}
	s.StopCleanup()
	if rawItem(t, s, "old") == nil {
		t.Fatal("expected the cancelled sweep to delete nothing")
	}
}

func TestCreateTable(t *testing.T) {
	t.Parallel()
	var logBuf syncBuffer
	fns := newTable(t, func(o *Options) {
		o.ExpiryAttribute = "ttl"
		o.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	})
	client := newClient(t)
	ctx := context.Background()
	// Again on the existing table: nothing to do.
	if err := CreateTable(ctx, client, fns...); err != nil {
		t.Fatalf("got %v: expected nil for a matching table", err)
	}
	o := resolveOptions(0, fns)
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &o.TableName})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Table.TableStatus != types.TableStatusActive {
		t.Fatalf("got status %s: expected ACTIVE", desc.Table.TableStatus)
	}
	if bm := desc.Table.BillingModeSummary; bm == nil || bm.BillingMode != types.BillingModePayPerRequest {
		t.Fatalf("got billing %v: expected on-demand", bm)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &o.TableName})
	if err != nil {
		t.Fatal(err)
	}
	if ddblocal.IsDynalite() {
		// dynalite has no UpdateTimeToLive: the table is made all the
		// same, TTL stays off and a warning says so.
		if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != types.TimeToLiveStatusDisabled {
			t.Fatalf("got TTL %s: expected DISABLED on dynalite", d.TimeToLiveStatus)
		}
		if log := logBuf.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "TTL is not enabled") {
			t.Fatalf("got log %q: expected a warning that TTL is not enabled", log)
		}
		return
	}
	if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != "ttl" {
		t.Fatalf("got TTL %s on %q: expected ENABLED on %q", d.TimeToLiveStatus, aws.ToString(d.AttributeName), "ttl")
	}
	if logBuf.String() != "" {
		t.Fatalf("got log %q: expected no warning where TTL is enabled", logBuf.String())
	}

	// The same name with another key schema is an error that says so.
	err = CreateTable(ctx, client, append(fns, func(o *Options) { o.KeyAttribute = "id" })...)
	if err == nil || !strings.Contains(err.Error(), "another key schema") {
		t.Fatalf("got %v: expected a key schema error", err)
	}
	// And so is TTL already on another attribute.
	err = CreateTable(ctx, client, append(fns, func(o *Options) { o.ExpiryAttribute = "expires" })...)
	if err == nil || !strings.Contains(err.Error(), `TTL is already enabled on attribute "ttl"`) {
		t.Fatalf("got %v: expected a TTL attribute error", err)
	}
}

func TestCreateTableKeyType(t *testing.T) {
	t.Parallel()
	client := newClient(t)
	ctx := context.Background()
	name := fmt.Sprintf("t%d-numeric-key", tableSeq.Add(1))
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &name,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("session_key"), AttributeType: types.ScalarAttributeTypeN}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("session_key"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: &name})
	err = CreateTable(ctx, client, func(o *Options) { o.TableName = name })
	if err == nil || !strings.Contains(err.Error(), "of type N, want S") {
		t.Fatalf("got %v: expected a key type error", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprintf("token-%d", g)
			for i := range 10 {
				data := []byte(strconv.Itoa(i))
				if err := s.Commit(token, data, time.Now().Add(time.Minute)); err != nil {
					errs <- err
					return
				}
				if b, found, err := s.Find(token); err != nil || !found || !bytes.Equal(b, data) {
					errs <- fmt.Errorf("got %q, %v, %v: expected %q", b, found, err, data)
					return
				}
			}
			errs <- s.Delete(token)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Benchmarks: each store call beside the raw SDK call it makes, on the same
// item, interleaved in one loop so that both see the same machine and the
// same DynamoDB Local. They report each side's time and allocations per call
// and the ratio store/raw; ns/op is the pair.

func benchStore(b *testing.B) (*DynamoStore, *dynamodb.Client) {
	fns := newTable(b)
	client := newClient(b)
	return NewWithCleanupInterval(client, 0, fns...), client
}

// benchPair runs raw and store alternately, swapping their order each
// iteration, after a warm-up that lets DynamoDB Local's JIT settle.
func benchPair(b *testing.B, raw, store func() error) {
	for range 300 {
		if err := raw(); err != nil {
			b.Fatal(err)
		}
		if err := store(); err != nil {
			b.Fatal(err)
		}
	}
	var rawTime, storeTime time.Duration
	timed := func(f func() error, total *time.Duration) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		*total += time.Since(start)
	}
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			timed(raw, &rawTime)
			timed(store, &storeTime)
		} else {
			timed(store, &storeTime)
			timed(raw, &rawTime)
		}
		n++
	}
	b.StopTimer()
	b.ReportMetric(float64(rawTime.Nanoseconds())/float64(n), "raw-ns/call")
	b.ReportMetric(float64(storeTime.Nanoseconds())/float64(n), "store-ns/call")
	b.ReportMetric(float64(storeTime)/float64(rawTime), "store/raw")
	allocs := func(f func() error) float64 { return testing.AllocsPerRun(50, func() { f() }) }
	b.ReportMetric(allocs(raw), "raw-allocs/call")
	b.ReportMetric(allocs(store), "store-allocs/call")
}

func BenchmarkFind(b *testing.B) {
	s, client := benchStore(b)
	if err := s.Commit("token", bytes.Repeat([]byte{'d'}, 1024), time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	raw, store := findPair(s, client)
	benchPair(b, raw, store)
}

func BenchmarkCommit(b *testing.B) {
	s, client := benchStore(b)
	raw, store := commitPair(s, client)
	benchPair(b, raw, store)
}

// findPair returns a raw consistent GetItem of the item "token" and the
// store's Find of it, which must find it.
func findPair(s *DynamoStore, client *dynamodb.Client) (raw, store func() error) {
	ctx := context.Background()
	return func() error {
			_, err := client.GetItem(ctx, &dynamodb.GetItemInput{
				TableName:      s.table,
				Key:            map[string]types.AttributeValue{"session_key": &types.AttributeValueMemberS{Value: "token"}},
				ConsistentRead: aws.Bool(true),
			})
			return err
		}, func() error {
			_, found, err := s.FindCtx(ctx, "token")
			if err == nil && !found {
				err = errors.New("not found")
			}
			return err
		}
}

// commitPair returns a raw PutItem of 1 KB under "token" and the store's
// Commit of the same.
func commitPair(s *DynamoStore, client *dynamodb.Client) (raw, store func() error) {
	data := bytes.Repeat([]byte{'d'}, 1024)
	expiry := time.Now().Add(time.Hour)
	ctx := context.Background()
	return func() error {
			_, err := client.PutItem(ctx, &dynamodb.PutItemInput{
				TableName: s.table,
				Item: map[string]types.AttributeValue{
					"session_key": &types.AttributeValueMemberS{Value: "token"},
					"data":        &types.AttributeValueMemberB{Value: data},
					"expires":     &types.AttributeValueMemberN{Value: strconv.FormatInt(expiry.Unix(), 10)},
				},
			})
			return err
		}, func() error {
			return s.CommitCtx(ctx, "token", data, expiry)
		}
}

// TestNoSecretsInLogsOrErrors drives every error path it can reach with a
// recognisable token and data, and scans the errors and the log for them.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	t.Parallel()
	const token, data = "tok3n-secret-4b1d", "d4t4-secret-9c2e"
	var logs syncBuffer
	s := newStore(t, nil, withLogger(&logs))
	missing := NewWithCleanupInterval(newClient(t), 20*time.Millisecond, withLogger(&logs), func(o *Options) { o.TableName = "no-such-table" })
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(s.Commit(token, bytes.Repeat([]byte(data), 30_000), time.Now().Add(time.Hour))) // too large
	add(s.Commit(token+"\xff", []byte(data), time.Now().Add(time.Hour)))                // bad token
	add(s.CommitCtx(cancelled, token, []byte(data), time.Now().Add(time.Hour)))
	_, _, err := s.FindCtx(cancelled, token)
	add(err)
	add(s.DeleteCtx(cancelled, token))
	putRaw(t, s, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: token},
		"data":        &types.AttributeValueMemberS{Value: data},
		"expires":     &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)},
	})
	_, _, err = s.Find(token) // corrupt
	add(err)
	_, err = s.All() // logs the corrupt item
	add(err)
	add(missing.Commit(token, []byte(data), time.Now().Add(time.Hour)))
	_, _, err = missing.Find(token)
	add(err)
	add(missing.Delete(token))
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "sweep skipped") { // the sweeper's error, logged
		if time.Now().After(deadline) {
			t.Fatal("expected the sweeper to log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	missing.StopCleanup()

	if len(errs) < 9 {
		t.Fatalf("got %d errors: expected every call above but All to fail", len(errs))
	}
	for _, err := range errs {
		if msg := err.Error(); strings.Contains(msg, token) || strings.Contains(msg, data) {
			t.Fatalf("error %q carries the token or the data", msg)
		}
	}
	if out := logs.String(); strings.Contains(out, token) || strings.Contains(out, data) || !strings.Contains(out, "cannot be decoded") {
		t.Fatalf("got log %q: expected the corrupt item logged without token or data", out)
	}
}
