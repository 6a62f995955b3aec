package dynamostore

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// resealSpy lets a test act before a conditional PutItem goes through.
type resealSpy struct {
	Client
	beforeCondPut func(ctx context.Context, in *dynamodb.PutItemInput) error
}

func (c *resealSpy) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if in.ConditionExpression != nil && c.beforeCondPut != nil {
		if err := c.beforeCondPut(ctx, in); err != nil {
			return nil, err
		}
	}
	return c.Client.PutItem(ctx, in, optFns...)
}

// TestReseal: it seals plain sessions, skips expired and unreadable ones,
// leaves a session committed or deleted during it as the application left
// it, and needs Encryption.
func TestReseal(t *testing.T) {
	t.Parallel()
	fns := newTable(t, func(o *Options) { o.KeyPrefix = "app:" })
	client := newClient(t)
	plain := newDynamoStore(client, 0, clockAhead, fns)
	if _, err := plain.Reseal(context.Background()); err == nil || !strings.Contains(err.Error(), "no Options.Encryption") {
		t.Fatalf("got %v: expected an error without Encryption", err)
	}
	for _, token := range []string{"keep", "recommitted", "deleted"} {
		if err := plain.Commit(token, []byte("plain "+token), liveAt()); err != nil {
			t.Fatal(err)
		}
	}
	if err := plain.Commit("expired", []byte("plain expired"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	other := newDynamoStore(client, 0, clockAhead, append(fns, func(o *Options) { o.KeyPrefix = "other:" }))
	if err := other.Commit("x", []byte("another app's"), liveAt()); err != nil {
		t.Fatal(err)
	}
	spy := &resealSpy{Client: client}
	s := newDynamoStore(spy, 0, clockAhead, append(fns, withEncryption(newAEAD(t))))
	var once1, once2 sync.Once
	spy.beforeCondPut = func(ctx context.Context, in *dynamodb.PutItemInput) error {
		var err error
		switch in.Item["session_key"].(*types.AttributeValueMemberS).Value {
		case "app:recommitted":
			// The user's request commits between Reseal's Scan and its write.
			once1.Do(func() { err = plain.CommitCtx(ctx, "recommitted", []byte("newer"), liveAt()) })
		case "app:deleted":
			once2.Do(func() { err = plain.DeleteCtx(ctx, "deleted") })
		}
		return err
	}
	n, err := s.Reseal(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("got %d, %v: expected 1 session resealed", n, err)
	}
	assertSealed(t, rawItem(t, s, "app:keep"), "data_sealed", []byte("plain keep"))
	mustFind(t, s, "keep", "plain keep")
	mustFind(t, s, "recommitted", "newer")
	if !sessionitem.Revoked(rawItem(t, s, "app:deleted")) {
		t.Fatal("expected the deleted session to stay deleted")
	}
	if _, ok := rawItem(t, s, "app:expired")["data"]; !ok {
		t.Fatal("expected the expired session left as it was")
	}
	if _, ok := rawItem(t, s, "other:x")["data"]; !ok {
		t.Fatal("expected another prefix's session left as it was")
	}
}

// TestResealKeepsOwner: a maintenance job that reseals without the
// application's Owner option keeps every session's owner, so "log out
// everywhere" still finds them; and an item that has only the exact
// expiry in milliseconds, which is no session (no TTL would ever delete
// it), is left alone, rather than stopping Reseal.
func TestResealKeepsOwner(t *testing.T) {
	t.Parallel()
	aead := newAEAD(t)
	app := newStore(t, nil, withOwner, withEncryption(aead))
	if err := app.Commit("owned", []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit("anonymous", []byte("no owner"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// An item written by hand, with only the millisecond expiry.
	putRaw(t, app, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: "ms-only"},
		"data":        &types.AttributeValueMemberB{Value: []byte("u2|plain")},
		"owner":       &types.AttributeValueMemberS{Value: "u2"},
		"expires_ms":  &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)},
	})
	job := NewWithCleanupInterval(newClient(t), 0, func(o *Options) { o.TableName = app.tableName }, withEncryption(aead))
	if n, err := job.Reseal(context.Background()); err != nil || n != 2 {
		t.Fatalf("got %d, %v: expected 2 sessions resealed", n, err)
	}
	if _, ok := rawItem(t, app, "ms-only")["data"]; !ok {
		t.Fatal("expected the item without a TTL attribute left as it was")
	}
	if _, found, err := app.Find("ms-only"); found || err != nil {
		t.Fatalf("got %v, %v: expected the item without a TTL attribute served by no Find", found, err)
	}
	for key, want := range map[string]string{"owned": "u1", "anonymous": ""} {
		item := rawItem(t, app, key)
		o, _ := item["owner"].(*types.AttributeValueMemberS)
		switch {
		case want == "" && o != nil:
			t.Fatalf("%s: got owner %q: expected none", key, o.Value)
		case want != "" && (o == nil || o.Value != want):
			t.Fatalf("%s: got owner %v: expected %q kept", key, item["owner"], want)
		}
		if _, ok := item["data_sealed"]; !ok {
			t.Fatalf("%s: got %v: expected it sealed", key, item)
		}
	}
	waitOwnerTokens(t, app, "u1", []string{"owned"})
	if n, err := app.DeleteOwner(context.Background(), "u1"); err != nil || n != 1 {
		t.Fatalf("got %d, %v: expected the resealed session found and revoked", n, err)
	}
}

// TestResealSkipsTooLarge: a live session that fits unsealed but not
// sealed is left as it is, and Reseal goes on; before, it stopped the whole
// Reseal.
func TestResealSkipsTooLarge(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil, quietLog)
	hour := time.Now().Add(time.Hour)
	sec, ms := sessionitem.ExpiryValues(hour)
	l := maxItemBytes - s.itemSize("big", "data", 0, sec, ms) - 5
	putRaw(t, s, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: "big"},
		"data":        &types.AttributeValueMemberB{Value: make([]byte, l)},
		"expires":     &types.AttributeValueMemberN{Value: sec},
		"expires_ms":  &types.AttributeValueMemberN{Value: ms},
	})
	if _, found, _ := s.Find("big"); !found {
		t.Fatal("setup: expected the plain session found")
	}
	sealing := NewWithCleanupInterval(newClient(t), 0, quietLog, func(o *Options) { o.TableName = s.tableName }, withEncryption(newAEAD(t)))
	n, err := sealing.Reseal(context.Background())
	if err != nil {
		t.Fatalf("Reseal returned %d, %v: one session's size stops the whole Reseal", n, err)
	}
}
