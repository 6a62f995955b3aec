package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/zstd"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// verdict is what every part of the store must say of an item.
type verdict int

const (
	live       verdict = iota // Find, All and the cache serve it; Reseal rewrites it
	expired                   // served by none; the sweeper deletes and counts it
	unreadable                // a session's shape, unexpired, but its data cannot be read
	revoked                   // a revocation in force: no session, kept
	revokedEnd                // a revocation whose period is over: swept, not counted
	other                     // not this store's: never served, counted, rewritten or deleted
)

// shape is an item, keyed without the store's prefix unless foreign.
type shape struct {
	key     string
	foreign bool // key is the whole key, outside the store's fence
	item    map[string]types.AttributeValue
	want    verdict
}

// itemShapes returns one item of each shape the store may meet, with what
// the one rule of a live session says of it at now.
func itemShapes(prefix string, now time.Time) []shape {
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	b := func(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }
	data := b([]byte("x"))
	future, past := now.Add(time.Hour), now.Add(-time.Hour)
	sec := func(t time.Time) types.AttributeValue { return n(t.Unix() + 1) }
	ms := func(t time.Time) types.AttributeValue { return n(t.UnixMilli()) }
	zstdData := b(zstdFrame([]byte(strings.Repeat("compressible ", 100))))
	return []shape{
		{key: "live", item: map[string]types.AttributeValue{"data": data, "expires": sec(future), "expires_ms": ms(future)}, want: live},
		{key: "live-zstd", item: map[string]types.AttributeValue{"data_zstd": zstdData, "expires": sec(future), "expires_ms": ms(future)}, want: live},
		{key: "seconds-only", item: map[string]types.AttributeValue{"data": data, "expires": sec(future)}, want: live},
		{key: "decimal-seconds", item: map[string]types.AttributeValue{"data": data, "expires": &types.AttributeValueMemberN{Value: strconv.FormatInt(future.Unix(), 10) + ".5"}}, want: live},
		{key: "expired", item: map[string]types.AttributeValue{"data": data, "expires": sec(past), "expires_ms": ms(past)}, want: expired},
		{key: "seconds-only-expired", item: map[string]types.AttributeValue{"data": data, "expires": sec(past)}, want: expired},
		// The two expiry attributes disagree: the earlier decides.
		{key: "seconds-past-ms-future", item: map[string]types.AttributeValue{"data": data, "expires": sec(past), "expires_ms": ms(future)}, want: expired},
		{key: "ms-past-seconds-future", item: map[string]types.AttributeValue{"data": data, "expires": sec(future), "expires_ms": ms(past)}, want: expired},
		{key: "expired-zstd", item: map[string]types.AttributeValue{"data_zstd": zstdData, "expires": sec(past), "expires_ms": ms(past)}, want: expired},
		// Expired, whatever the data: the sweep deletes it, and stats counts
		// it expired, not unreadable.
		{key: "two-formats-expired", item: map[string]types.AttributeValue{"data": data, "data_zstd": data, "expires": sec(past), "expires_ms": ms(past)}, want: expired},
		{key: "bad-zstd-expired", item: map[string]types.AttributeValue{"data_zstd": data, "expires": sec(past)}, want: expired},
		// Not a session's shape: never deleted, even when "expired".
		{key: "ms-only", item: map[string]types.AttributeValue{"data": data, "expires_ms": ms(past)}, want: other},
		{key: "seconds-not-N", item: map[string]types.AttributeValue{"data": data, "expires": s("1")}, want: other},
		{key: "ms-not-N", item: map[string]types.AttributeValue{"data": data, "expires": sec(past), "expires_ms": s("1")}, want: other},
		{key: "no-data", item: map[string]types.AttributeValue{"expires": sec(past)}, want: other},
		{key: "data-not-B", item: map[string]types.AttributeValue{"data": s("x"), "expires": sec(past)}, want: other},
		{key: "no-expiry", item: map[string]types.AttributeValue{"data": data}, want: other},
		// A session's shape whose data cannot be read.
		{key: "two-formats", item: map[string]types.AttributeValue{"data": data, "data_zstd": data, "expires": sec(future)}, want: unreadable},
		{key: "bad-zstd", item: map[string]types.AttributeValue{"data_zstd": data, "expires": sec(future)}, want: unreadable},
		// What Delete leaves.
		{key: "revoked", item: map[string]types.AttributeValue{"expires": sec(future), sessionitem.RevokedAttribute: ms(future)}, want: revoked},
		{key: "revocation-ended", item: map[string]types.AttributeValue{"expires": sec(past), sessionitem.RevokedAttribute: ms(past)}, want: revokedEnd},
		// Under the prefix, but no token: not this store's.
		{key: "inv#42", item: map[string]types.AttributeValue{"data": data, "expires": sec(past)}, want: other},
		{key: sessionitem.LeaseToken, item: map[string]types.AttributeValue{"lease_owner": s("someone"), "lease_until_ms": ms(past)}, want: other},
		// Another application's items, shaped as expired sessions.
		{key: "invoice#42", foreign: true, item: map[string]types.AttributeValue{"data": data, "expires": sec(past)}, want: other},
		{key: prefix + "x:old", foreign: true, item: map[string]types.AttributeValue{"data": data, "expires": sec(past), "expires_ms": ms(past)}, want: other},
		{key: "other:old", foreign: true, item: map[string]types.AttributeValue{"data": data, "expires": sec(past), "expires_ms": ms(past)}, want: other},
	}
}

func zstdFrame(b []byte) []byte {
	e, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	defer e.Close()
	return e.EncodeAll(b, nil)
}

// TestItemShapes: one rule says what a live session is. For every shape of
// item, with an empty KeyPrefix and with one, Find, All, the CachedStore,
// the tool's stats, delete-expired's dry run and real run, and Reseal agree.
func TestItemShapes(t *testing.T) {
	t.Parallel()
	for name, prefix := range map[string]string{"no-prefix": "", "prefix": "app:"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testItemShapes(t, prefix)
		})
	}
}

func testItemShapes(t *testing.T, prefix string) {
	ctx := context.Background()
	name := tableName(t)
	createWithoutTTL(t, name)
	shapes := itemShapes(prefix, time.Now())
	want := map[verdict][]string{}
	items := map[string]map[string]types.AttributeValue{}
	for _, sh := range shapes {
		key := sh.key
		if !sh.foreign {
			key = prefix + sh.key
		}
		item := maps.Clone(sh.item)
		item["session_key"] = &types.AttributeValueMemberS{Value: key}
		if _, err := client().PutItem(ctx, &dynamodb.PutItemInput{TableName: &name, Item: item}); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		items[key] = item
		want[sh.want] = append(want[sh.want], sh.key)
	}
	var logs bytes.Buffer
	opts := func(o *dynamostore.Options) {
		o.TableName = name
		o.KeyPrefix = prefix
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	}
	store := dynamostore.NewWithCleanupInterval(client(), 0, opts)
	cached := dynamostore.NewCached(store)

	// Find and the CachedStore serve exactly the live sessions; All lists
	// them.
	var found []string
	for _, sh := range shapes {
		if sh.foreign {
			continue
		}
		_, ok, err := store.Find(sh.key)
		if err != nil {
			t.Fatalf("find %s: %v", sh.key, err)
		}
		_, cok, err := cached.Find(sh.key)
		if err != nil || cok != ok {
			t.Fatalf("cached find %s: got %v, %v: expected %v, as the store", sh.key, cok, err, ok)
		}
		if ok {
			found = append(found, sh.key)
		}
	}
	all, err := store.All()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(found)
	wantLive := slices.Sorted(slices.Values(want[live]))
	if !slices.Equal(found, wantLive) || !slices.Equal(slices.Sorted(maps.Keys(all)), wantLive) {
		t.Fatalf("Find served %v, All listed %v: expected %v", found, slices.Sorted(maps.Keys(all)), wantLive)
	}
	for _, key := range want[unreadable] {
		if !strings.Contains(logs.String(), "cannot be read") {
			t.Fatalf("%s: got log %q: expected the unreadable item logged", key, logs.String())
		}
	}

	// The tool counts by the same rule.
	args := []string{"--table", name, "--key-prefix", prefix}
	wantStats := fmt.Sprintf("items scanned: %d\nlive sessions: %d\nexpired sessions: %d\nexpired sessions past --grace 1m: %d (what delete-expired --grace 1m deletes)\ncompressed sessions: 2\nencrypted sessions: 0\nunreadable sessions: %d\nrevocations: %d\nnot this store's sessions: %d\n",
		len(shapes), len(want[live]), len(want[expired]), len(want[expired]), len(want[unreadable]), len(want[revoked])+len(want[revokedEnd]), len(want[other]))
	if code, out, errOut := dynamostoreCmd(t, append([]string{"stats"}, args...)...); code != 0 || !strings.HasPrefix(out, wantStats) {
		t.Fatalf("got %d, %q, %q: expected stats to begin %q", code, out, errOut, wantStats)
	}
	// The dry run counts what the real run deletes, and deletes nothing.
	wantDry := fmt.Sprintf("would delete %d expired sessions of %d items scanned in ", len(want[expired]), len(shapes))
	if code, out, errOut := dynamostoreCmd(t, append([]string{"delete-expired", "--dry-run"}, args...)...); code != 0 || !strings.HasPrefix(out, wantDry) {
		t.Fatalf("got %d, %q, %q: expected %q", code, out, errOut, wantDry)
	}
	wantReal := fmt.Sprintf("deleted %d expired sessions of %d items scanned in ", len(want[expired]), len(shapes))
	if code, out, errOut := dynamostoreCmd(t, append([]string{"delete-expired"}, args...)...); code != 0 || !strings.HasPrefix(out, wantReal) {
		t.Fatalf("got %d, %q, %q: expected %q", code, out, errOut, wantReal)
	}
	// Reseal rewrites the live sessions alone.
	a := newAEAD(t)
	sealing := dynamostore.NewWithCleanupInterval(client(), 0, opts, func(o *dynamostore.Options) { o.Encryption = a })
	if n, err := sealing.Reseal(ctx); err != nil || n != len(want[live]) {
		t.Fatalf("got %d, %v: expected the %d live sessions resealed", n, err, len(want[live]))
	}

	// What is left: the expired sessions and the ended revocation are gone;
	// every other item is as it was put, but the live ones, now sealed.
	for _, sh := range shapes {
		key := sh.key
		if !sh.foreign {
			key = prefix + sh.key
		}
		out, err := client().GetItem(ctx, &dynamodb.GetItemInput{TableName: &name, Key: map[string]types.AttributeValue{"session_key": items[key]["session_key"]}, ConsistentRead: new(true)})
		if err != nil {
			t.Fatal(err)
		}
		switch sh.want {
		case expired, revokedEnd:
			if out.Item != nil {
				t.Errorf("%s: got %v: expected it swept", key, out.Item)
			}
		case live:
			if _, ok := out.Item["data_sealed"]; !ok {
				if _, ok := out.Item["data_zstd_sealed"]; !ok {
					t.Errorf("%s: got %v: expected it resealed", key, out.Item)
				}
			}
		default:
			if !reflect.DeepEqual(out.Item, items[key]) {
				t.Errorf("%s: got %v: expected it untouched, %v", key, out.Item, items[key])
			}
		}
	}
}
