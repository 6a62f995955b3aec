package dynamostore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
	"github.com/klauspost/compress/zstd"
)

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
		"not base64url":      "a:b",
		"space":              "a b",
		"the sweeper lease":  "#sweeper-lease",
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
	longest := strings.Repeat("x", 2048-len("app:"))
	if err := s.Commit(longest, []byte("x"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Find(longest); err != nil || !found {
		t.Fatalf("got %v, %v: expected the 2048-byte key to be found", found, err)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	// The store's clock, not a sleep, moves past the expiry; both are hours
	// ahead of real time, where DynamoDB Local's own TTL cannot reach.
	var clock atomic.Int64
	clock.Store(time.Now().Add(2 * time.Hour).UnixNano())
	s := newStoreWith(t, nil, hooks{now: func() time.Time { return time.Unix(0, clock.Load()) }})
	expiry := s.now().Add(1500 * time.Millisecond)
	if err := s.Commit("session_token", []byte("encoded_data"), expiry); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Find("session_token"); !found {
		t.Fatalf("got %v: expected %v", found, true)
	}
	clock.Store(expiry.UnixNano())
	if _, found, err := s.Find("session_token"); found || err != nil {
		t.Fatalf("got %v, %v: expected not found once the expiry has passed", found, err)
	}
}

func TestExpiryBoundaries(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	expiry := time.Unix(time.Now().Unix()+3600, 700_400_000) // x.7004 s
	if err := s.Commit("token", []byte("data"), expiry); err != nil {
		t.Fatal(err)
	}
	item := rawItem(t, s, "token")
	if got, want := item["expires"].(*types.AttributeValueMemberN).Value, strconv.FormatInt(expiry.Unix()+1, 10); got != want {
		t.Fatalf("got TTL attribute %s: expected whole seconds rounded up, %s", got, want)
	}
	if got, want := item["expires_ms"].(*types.AttributeValueMemberN).Value, strconv.FormatInt(expiry.UnixMilli(), 10); got != want {
		t.Fatalf("got exact expiry %s: expected milliseconds %s", got, want)
	}
	second := time.Unix(expiry.Unix(), 0)
	cases := []struct {
		now   time.Time
		found bool
	}{
		{expiry.Add(-time.Second), true},
		{second, true}, // the expiry's second has begun: still live
		{expiry.Add(-400 * time.Microsecond).Add(-time.Nanosecond), true}, // the last instant before x.700
		{expiry.Add(-400 * time.Microsecond), false},                      // x.700: expired, to the millisecond
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

// TestExpiryWholeSeconds reads items written before the exact expiry existed,
// with whole seconds only: each expires at the start of its second.
func TestExpiryWholeSeconds(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	second := time.Now().Add(time.Hour).Truncate(time.Second)
	putRaw(t, s, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: "old"},
		"data":        &types.AttributeValueMemberB{Value: []byte("data")},
		"expires":     &types.AttributeValueMemberN{Value: strconv.FormatInt(second.Unix(), 10)},
	})
	for now, found := range map[time.Time]bool{second.Add(-time.Millisecond): true, second: false} {
		s.now = func() time.Time { return now }
		if b, ok, err := s.Find("old"); err != nil || ok != found || found && string(b) != "data" {
			t.Fatalf("at %v: got %q, %v, %v: expected found=%v", now, b, ok, err, found)
		}
		if all, err := s.All(); err != nil || (len(all) == 1) != found {
			t.Fatalf("All at %v: got %d sessions, %v: expected found=%v", now, len(all), err, found)
		}
	}
}

func TestFindExpiredItemStillInTable(t *testing.T) {
	t.Parallel()
	s := newStoreWith(t, nil, clockAhead)
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
	if len(item) != 4 {
		t.Fatalf("got %d attributes: expected 4", len(item))
	}
	if got := item["d"].(*types.AttributeValueMemberB).Value; !bytes.Equal(got, data) {
		t.Fatalf("got data %v: expected exactly %v", got, data)
	}
	seconds, millis := sessionitem.ExpiryValues(expiry)
	if got := item["x"].(*types.AttributeValueMemberN).Value; got != seconds {
		t.Fatalf("got expiry %s: expected %s", got, seconds)
	}
	if got := item["x_ms"].(*types.AttributeValueMemberN).Value; got != millis {
		t.Fatalf("got exact expiry %s: expected %s", got, millis)
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
	if got := rawItem(t, s, "token")["expires_ms"].(*types.AttributeValueMemberN).Value; got != strconv.FormatInt(later.UnixMilli(), 10) {
		t.Fatalf("got expiry %s: expected %d", got, later.UnixMilli())
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
		exp, expMs := sessionitem.ExpiryValues(expiry)
		// The largest data that fits, by DynamoDB's own count: DynamoDB Local
		// must accept it, so the store is not stricter than DynamoDB.
		fits := maxItemBytes - len("session_key") - len(prefix+"token") - len("data") -
			len("expires") - numberSize(exp) - len("expires_ms") - numberSize(expMs)
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
		{"at-threshold", gobSession(t, 1024, 2)[:1024], true},
		{"4KB", gobSession(t, 4096, 3), true},
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
	s := NewWithCleanupInterval(offline{}, 0)
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
	if item := rawItem(t, s, "token"); !sessionitem.Revoked(item) || item["data"] != nil {
		t.Fatalf("got %v: expected a revocation without data in the session's place", item)
	}
	// A request in flight that loaded the session before the Delete
	// commits it back: it stores nothing, without an error.
	if err := s.Commit("token", []byte("data"), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Find("token"); found || err != nil {
		t.Fatalf("got %v, %v: expected the revoked session to stay deleted", found, err)
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
	// KeyPrefix is a fence: the store without one sees none of theirs.
	if all, err := bare.All(); err != nil || len(all) != 0 {
		t.Fatalf("got %v, %v: expected none of the prefixed sessions", all, err)
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
		// A session's shape, whose data cannot be read: All logs these too.
		{"tok-two-formats", map[string]types.AttributeValue{"data": &types.AttributeValueMemberB{Value: []byte(secret)}, "data_zstd": &types.AttributeValueMemberB{Value: []byte(secret)}, "expires": future}, "data"},
		{"tok-bad-zstd", map[string]types.AttributeValue{"data_zstd": &types.AttributeValueMemberB{Value: []byte(secret)}, "expires": future}, "data_zstd"},
	}
	const shaped = 2 // the last cases: the rest are no session to All
	for _, c := range cases {
		c.item["session_key"] = &types.AttributeValueMemberS{Value: c.token}
		putRaw(t, s, c.item)
		// No session and no error: scs would answer every request with
		// this cookie with a 500 until it expired.
		before := logs.String()
		if b, found, err := s.Find(c.token); err != nil || found {
			t.Fatalf("%s: got %q, %v, %v: expected no session and no error", c.token, b, found, err)
		}
		msg := strings.TrimPrefix(logs.String(), before)
		if !strings.Contains(msg, "level=WARN") || !strings.Contains(msg, s.tableName) || !strings.Contains(msg, `\"`+c.attr+`\"`) {
			t.Fatalf("%s: got log %q: expected a warning naming the table and attribute %q", c.token, msg, c.attr)
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
	if strings.Count(out, "all: an item that cannot be read") != shaped {
		t.Fatalf("got log %q: expected a line per item of a session's shape that cannot be read", out)
	}
	for _, c := range cases {
		if strings.Contains(out, c.token) || strings.Contains(out, secret) {
			t.Fatalf("got log %q: expected neither tokens nor data", out)
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	s := NewWithCleanupInterval(offline{}, 0)
	data := &types.AttributeValueMemberB{Value: []byte("d")}
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
		if !errors.As(err, &notFound) || !errors.Is(err, ErrTableNotFound) {
			t.Fatalf("%s: got %v: expected a ResourceNotFoundException and ErrTableNotFound", op, err)
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

// TestNoSecretsInLogsOrErrors drives every error path it can reach with a
// recognisable token, data and owner, and scans the errors and the log for
// them.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	t.Parallel()
	const token, data, owner = "tok3n-secret-4b1d", "d4t4-secret-9c2e", "0wn3r-secret-77aa"
	var logs syncBuffer
	s := newStore(t, nil, withLogger(&logs), withOwner)
	missing := NewWithCleanupInterval(newClient(t), 20*time.Millisecond, withLogger(&logs), withOwner, func(o *Options) { o.TableName = "no-such-table" })
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
	_, _, err = s.Find(token) // corrupt: logged
	add(err)
	_, err = s.All() // no session's shape: skipped
	add(err)
	add(s.Commit(token+"2", []byte(owner+"\xff|"+data), time.Now().Add(time.Hour))) // logs the owner it cannot index
	putRaw(t, s, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: token + "3"},
		"owner":       &types.AttributeValueMemberS{Value: owner},
		"expires":     &types.AttributeValueMemberS{Value: "corrupt"},
	})
	_, err = s.OwnerTokens(context.Background(), owner) // no session: skipped
	add(err)
	_, err = s.OwnerTokens(cancelled, owner)
	add(err)
	_, err = s.DeleteOwner(cancelled, owner)
	add(err)
	_, err = missing.DeleteOwner(context.Background(), owner)
	add(err)
	noIndex := NewWithCleanupInterval(newClient(t), 0, withOwner, func(o *Options) { o.TableName = newTableName(t) })
	ddblocal.CreateTableWithoutTTL(t, newClient(t), noIndex.tableName, "session_key", types.ScalarAttributeTypeS)
	_, err = noIndex.DeleteOwner(context.Background(), owner)
	add(err)
	add(missing.Commit(token, []byte(data), time.Now().Add(time.Hour)))
	_, _, err = missing.Find(token)
	add(err)
	add(missing.Delete(token))
	logs.waitFor(t, "sweep skipped") // the sweeper's error, logged
	missing.StopCleanup()

	if len(errs) < 12 {
		t.Fatalf("got %d errors: expected every call above but the corrupt item's Find, All, the owner's Commit and OwnerTokens to fail", len(errs))
	}
	for _, err := range errs {
		if msg := err.Error(); strings.Contains(msg, token) || strings.Contains(msg, data) || strings.Contains(msg, owner) {
			t.Fatalf("error %q carries the token, the data or the owner", msg)
		}
	}
	out := logs.String()
	if strings.Contains(out, token) || strings.Contains(out, data) || strings.Contains(out, owner) ||
		!strings.Contains(out, "cannot be read") || !strings.Contains(out, "without an owner") {
		t.Fatalf("got log %q: expected the corrupt items and the owner logged without token, data or owner", out)
	}
}

// unitsSpy asks DynamoDB for the capacity of every request and keeps the
// last one's units, with the calls of each kind.
type unitsSpy struct {
	Client
	mu         sync.Mutex
	last       float64
	gets, puts int
}

func (c *unitsSpy) record(cc *types.ConsumedCapacity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = -1
	if cc != nil {
		c.last = aws.ToFloat64(cc.CapacityUnits)
	}
}

func (c *unitsSpy) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	copied := *in
	copied.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.GetItem(ctx, &copied, optFns...)
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	if err == nil {
		c.record(out.ConsumedCapacity)
	}
	return out, err
}

func (c *unitsSpy) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	copied := *in
	copied.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.PutItem(ctx, &copied, optFns...)
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	if err == nil {
		c.record(out.ConsumedCapacity)
	}
	return out, err
}

func (c *unitsSpy) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	copied := *in
	copied.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.DeleteItem(ctx, &copied, optFns...)
	if err == nil {
		c.record(out.ConsumedCapacity)
	}
	return out, err
}

// TestRevocationCost measures, with DynamoDB's ReturnConsumedCapacity, what
// a revocation costs: a Delete costs what a DeleteItem of the session would,
// Commit stays one write request and Find one read request, and a
// revocation is about 100 bytes of storage, which is what a refused Commit
// is billed by (DynamoDB bills a failed condition by the existing item's
// size; the SDK's error does not report it).
func TestRevocationCost(t *testing.T) {
	t.Parallel()
	spy := &unitsSpy{Client: newClient(t)}
	s := newStore(t, spy)
	units := func() float64 {
		spy.mu.Lock()
		defer spy.mu.Unlock()
		return spy.last
	}
	// A scs token: 32 random bytes, base64url.
	token := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 32))
	for _, size := range []int{1000, 3000} {
		data := gobSession(t, size, uint64(size))
		tok, raw := fmt.Sprintf("%s-%d", token, size), fmt.Sprintf("raw-%s-%d", token, size)
		if err := s.Commit(tok, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		commit := units()
		if err := s.Commit(raw, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		spy.mu.Lock()
		gets, puts := spy.gets, spy.puts
		spy.mu.Unlock()
		mustFind(t, s, tok, string(data))
		find := units()
		if err := s.Delete(tok); err != nil {
			t.Fatal(err)
		}
		del := units()
		// The same session deleted with a plain DeleteItem, for comparison.
		if _, err := spy.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
			TableName: aws.String(s.tableName),
			Key:       map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: raw}},
		}); err != nil {
			t.Fatal(err)
		}
		plain := units()
		spy.mu.Lock()
		if spy.gets != gets+1 || spy.puts != puts+1 {
			t.Errorf("got %d GetItem and %d PutItem for a Find and a Delete: expected one each", spy.gets-gets, spy.puts-puts)
		}
		spy.mu.Unlock()
		t.Logf("session of %d bytes: Commit %.1f write units, Find %.1f read units, Delete %.1f write units (a DeleteItem: %.1f)", len(data), commit, find, del, plain)
		if del != plain || commit <= 0 || find <= 0 {
			t.Errorf("got Delete %.1f units: expected what a DeleteItem costs, %.1f", del, plain)
		}
	}
	// The revocation's size, as DynamoDB counts it: the attribute names and
	// values.
	item := rawItem(t, s, token+"-1000")
	size := 0
	for name, v := range item {
		size += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			size += len(v.Value)
		case *types.AttributeValueMemberN:
			size += numberSize(v.Value)
		default:
			t.Fatalf("got attribute %s of %T: expected only a key and numbers", name, v)
		}
	}
	t.Logf("a revocation of a %d-character token is %d bytes: %v attributes", len(token)+5, size, len(item))
	if len(item) != 3 || size > 100 {
		t.Fatalf("got %d attributes, %d bytes: expected the key, expires and %s, at most 100 bytes", len(item), size, sessionitem.RevokedAttribute)
	}
	// A refused Commit is one request, and stores nothing.
	spy.mu.Lock()
	puts := spy.puts
	spy.mu.Unlock()
	if err := s.Commit(token+"-1000", []byte("back"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if spy.puts != puts+1 {
		t.Fatalf("got %d requests for a refused Commit: expected 1", spy.puts-puts)
	}
}

// TestExpiryWithinTTLReach: a session committed with a zero or pre-1970
// expiry is stored with a TTL attribute that DynamoDB's TTL still acts on
// (it skips items more than five years past), and is not found.
func TestExpiryWithinTTLReach(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil)
	for token, expiry := range map[string]time.Time{"zero": {}, "1960": time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), "1990": time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if err := s.Commit(token, []byte("data"), expiry); err != nil {
			t.Fatal(err)
		}
		mustFind(t, s, token, "")
		n, ok := rawItem(t, s, token)["expires"].(*types.AttributeValueMemberN)
		if !ok {
			t.Fatalf("%s: expected a TTL attribute", token)
		}
		secs, _ := strconv.ParseInt(n.Value, 10, 64)
		if reach := time.Now().AddDate(-5, 0, 0).Unix(); secs <= reach || secs > time.Now().Unix() {
			t.Fatalf("%s: got TTL %d: expected past, and within five years of now (after %d)", token, secs, reach)
		}
	}
}

// TestNewNilClient: New refuses a nil Client at once, with a message that
// says what to pass, rather than panicking at the first Find.
func TestNewNilClient(t *testing.T) {
	t.Parallel()
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "Client is nil") {
			t.Fatalf("got %v: expected a panic naming the nil Client", r)
		}
	}()
	New(nil)
}

// TestInvalidOptions: options that cannot work are refused when the store
// is built, by New's panic and by CheckOptions's error, each naming the
// option; never by every request.
func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		fn   func(*Options)
	}{
		// A prefix that cannot be fenced: "app" + "2x" is "app2" + "x".
		{"KeyPrefix", func(o *Options) { o.KeyPrefix = "app" }},
		{"KeyPrefix", func(o *Options) { o.KeyPrefix = "app:_" }},
		{"KeyPrefix", func(o *Options) { o.KeyPrefix = "\xff:" }},
		{"KeyPrefix", func(o *Options) { o.KeyPrefix = strings.Repeat(":", maxKeyBytes) }},
		// Names of the store's own attributes.
		{"the store's own", func(o *Options) { o.ExpiryAttribute = "revoked_until" }},
		{"the store's own", func(o *Options) { o.DataAttribute = sessionitem.RevokedAttribute }},
		{"the store's own", func(o *Options) { o.KeyAttribute = leaseOwnerAttr }},
		{"the store's own", func(o *Options) { o.ExpiryAttribute = "last_write" }},
		{"the store's own", func(o *Options) { o.KeyAttribute = sessionitem.LastWriteAttribute }},
		{"OwnerAttribute", func(o *Options) { withOwner(o); o.OwnerAttribute = sessionitem.LastWriteAttribute }},
		// An owner attribute that would overwrite another attribute.
		{"OwnerAttribute", func(o *Options) { withOwner(o); o.OwnerAttribute = "data" }},
		{"OwnerAttribute", func(o *Options) { withOwner(o); o.OwnerAttribute = "expires_ms" }},
		{"OwnerAttribute", func(o *Options) { withOwner(o); o.OwnerAttribute = leaseOwnerAttr }},
		{"OwnerAttribute", func(o *Options) { withOwner(o); o.OwnerAttribute = leaseUntilAttr }},
		{"RequireEncryption", func(o *Options) { o.RequireEncryption = true }},
		// Names that clash with each other: an item would lose one.
		{"named twice", func(o *Options) { o.DataAttribute = "expires" }},
		{"named twice", func(o *Options) { o.DataAttribute = "expires_ms" }},
		{"named twice", func(o *Options) { o.KeyAttribute = "data" }},
		{"named twice", func(o *Options) { o.KeyAttribute = "expires" }},
		{"named twice", func(o *Options) { o.ExpiryAttribute = "data_zstd" }},
		// The owner attribute, without Owner: a sealed item binds it.
		{"OwnerAttribute", func(o *Options) { o.OwnerAttribute = "session_key" }},
		{"SweepReadRate", func(o *Options) { o.SweepReadRate = math.NaN() }},
		{"SweepReadRate", func(o *Options) { o.SweepReadRate = math.Inf(1) }},
	} {
		mustPanicInvalid(t, c.name, c.fn)
	}
	if err := CreateTable(context.Background(), newClient(t), func(o *Options) { o.OwnerAttribute = "expires" }); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("got %v: expected CreateTable to refuse an owner index on the expiry", err)
	}
	for _, prefix := range []string{"", "app:", "app:x:", "app#", "tenant/42/"} {
		if err := CheckOptions(func(o *Options) { o.KeyPrefix = prefix }); err != nil {
			t.Fatalf("KeyPrefix %q: got %v: expected it fenced", prefix, err)
		}
	}
}

// mustPanicInvalid checks that options fn are refused by CheckOptions
// (ErrInvalidOptions) and by New's panic, each naming name.
func mustPanicInvalid(t *testing.T, name string, fn func(*Options)) {
	t.Helper()
	err := CheckOptions(fn)
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), name) {
		t.Fatalf("got %v: expected ErrInvalidOptions naming %s", err, name)
	}
	defer func() {
		t.Helper()
		if r := recover(); r == nil || fmt.Sprint(r) != "dynamostore: New: "+err.Error() {
			t.Fatalf("got panic %v: expected %q", r, err)
		}
	}()
	NewWithCleanupInterval(offline{}, 0, fn)
}

// TestDecompressBounded: what a planted zstd frame can cost a Find. A frame
// without a stated size, which would grow buffers to 94 MB for 15 MiB of
// output, and a frame followed by another, are refused at once; a frame
// stating the most there may be, 4 MiB, costs about that (4.3 MB), and one
// stating more is refused before any buffer is made. Not parallel:
// it measures the process's allocations.
func TestDecompressBounded(t *testing.T) {
	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	var streamed bytes.Buffer
	w, err := zstd.NewWriter(&streamed, zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 15<<20))
	w.Close()
	small := compress(bytes.Repeat([]byte("session "), 500))
	stated := compress(make([]byte, maxDecodedBytes))
	over := compress(make([]byte, 16<<20))
	decompress(small) // warm the decoder
	// The encoder states the size of every input of 256 bytes or more.
	for _, n := range []int{256, 1000, 4096, 1 << 20} {
		var h zstd.Header
		if err := h.Decode(zstdEncoder().EncodeAll(make([]byte, n), nil)); err != nil || !h.HasFCS || h.FrameContentSize != uint64(n) {
			t.Fatalf("%d bytes: got a frame stating %v %d (%v): expected its size stated", n, h.HasFCS, h.FrameContentSize, err)
		}
	}
	if b, err := decompress(zstdEncoder().EncodeAll([]byte("session"), nil)); err != nil || string(b) != "session" {
		t.Fatalf("got %q, %v: expected a small frame without a stated size to decode", b, err)
	}
	for _, c := range []struct {
		name   string
		frame  []byte
		ok     bool
		within uint64
	}{
		{"no stated size, 15 MiB out", streamed.Bytes(), false, 1 << 20},
		{"a second frame", append(bytes.Clone(small), stated...), false, 1 << 20},
		{"the limit stated", stated, true, maxDecodedBytes + 1<<20},
		{"16 MiB stated", over, false, 1 << 20},
		{"a session", small, true, 1 << 20},
	} {
		var derr error
		n := allocated(func() { _, derr = decompress(c.frame) })
		t.Logf("%s: a %d-byte frame, %.1f MB allocated, %v", c.name, len(c.frame), float64(n)/1e6, derr)
		if (derr == nil) != c.ok || n > c.within {
			t.Errorf("%s: got %v and %d bytes allocated: expected ok=%v within %d", c.name, derr, n, c.ok, c.within)
		}
	}
}

// TestCommitNew: CommitNewCtx stores a session where the table holds none,
// or an expired one, and never over a live session or a revocation in
// force; through a CachedStore too, which caches what it stored.
func TestCommitNew(t *testing.T) {
	t.Parallel()
	s := newStoreWith(t, nil, clockAhead)
	ctx := context.Background()
	commitNew := func(st CommitNewStore, token, data string, want bool) {
		t.Helper()
		if stored, err := st.CommitNewCtx(ctx, token, []byte(data), liveAt()); stored != want || err != nil {
			t.Fatalf("%s: got %v, %v: expected stored=%v", token, stored, err, want)
		}
	}
	commitNew(s, "absent", "moved", true)
	mustFind(t, s, "absent", "moved")
	if err := s.Commit("live", []byte("newer"), liveAt()); err != nil {
		t.Fatal(err)
	}
	commitNew(s, "live", "older", false)
	mustFind(t, s, "live", "newer")
	if err := s.Delete("revoked"); err != nil {
		t.Fatal(err)
	}
	commitNew(s, "revoked", "back", false)
	mustFind(t, s, "revoked", "")
	if err := s.Commit("expired", []byte("old"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	commitNew(s, "expired", "moved", true)
	mustFind(t, s, "expired", "moved")

	c := NewCached(s)
	commitNew(c, "cached", "moved", true)
	mustFind(t, c, "cached", "moved")
	if st := c.Stats(); st.Hits != 1 {
		t.Fatalf("got %+v: expected the stored session served from the cache", st)
	}
	commitNew(c, "cached", "again", false)
	mustFind(t, c, "cached", "moved")
	if err := c.Delete("cached"); err != nil {
		t.Fatal(err)
	}
	commitNew(c, "cached", "back", false)
	mustFind(t, c, "cached", "")

	// A CachedStore in front of a store without CommitNewCtx says so.
	m := NewCached(memstore.NewWithCleanupInterval(0))
	if _, err := m.CommitNewCtx(ctx, "token", []byte("x"), liveAt()); !errors.Is(err, ErrClientMethod) {
		t.Fatalf("got %v: expected ErrClientMethod", err)
	}
}
