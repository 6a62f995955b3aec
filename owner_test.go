package dynamostore

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// ownerSpy wraps a *dynamodb.Client, so it has Query and BatchGetItem,
// counting requests, paging Queries by queryLimit when set, and letting a
// test act before a delete goes through.
type ownerSpy struct {
	*dynamodb.Client
	queryLimit   int32
	beforeDelete func(ctx context.Context, in *dynamodb.DeleteItemInput) error
	beforePut    func(ctx context.Context, in *dynamodb.PutItemInput) error // DeleteOwner's revocations too

	queries, batchGets, scans atomic.Int64
	mu                        sync.Mutex
	lastQuery                 *dynamodb.QueryInput
}

func (c *ownerSpy) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries.Add(1)
	c.mu.Lock()
	c.lastQuery = in
	c.mu.Unlock()
	if c.queryLimit > 0 {
		copied := *in
		copied.Limit = aws.Int32(c.queryLimit)
		in = &copied
	}
	return c.Client.Query(ctx, in, optFns...)
}

func (c *ownerSpy) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.batchGets.Add(1)
	return c.Client.BatchGetItem(ctx, in, optFns...)
}

func (c *ownerSpy) Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.scans.Add(1)
	return c.Client.Scan(ctx, in, optFns...)
}

func (c *ownerSpy) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if c.beforePut != nil {
		if err := c.beforePut(ctx, in); err != nil {
			return nil, err
		}
	}
	return c.Client.PutItem(ctx, in, optFns...)
}

func (c *ownerSpy) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if c.beforeDelete != nil {
		if err := c.beforeDelete(ctx, in); err != nil {
			return nil, err
		}
	}
	return c.Client.DeleteItem(ctx, in, optFns...)
}

// ownedBy is an Owner function that reads data of the form "owner|rest":
// sessions whose data has no "|" have no owner.
func ownedBy(data []byte) (string, bool) {
	owner, _, ok := bytes.Cut(data, []byte("|"))
	return string(owner), ok
}

func withOwner(o *Options) { o.Owner = ownedBy }

// waitOwnerTokens polls OwnerTokens until it returns want: the owner index
// is eventually consistent.
func waitOwnerTokens(t *testing.T, s *DynamoStore, owner string, want []string) {
	t.Helper()
	var got []string
	var err error
	waitUntil(t, fmt.Sprintf("OwnerTokens to return %d tokens", len(want)), func() bool {
		got, err = s.OwnerTokens(context.Background(), owner)
		return err != nil || slices.Equal(got, want)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSessionValue(t *testing.T) {
	t.Parallel()
	type userID string
	type accountID int32
	gob.Register(userID(""))
	gob.Register(accountID(0))
	cases := []struct {
		value any
		want  string // "" for no owner
	}{
		{"alice", "alice"},
		{userID("u-42"), "u-42"},
		{42, "42"},
		{int64(-7), "-7"},
		{uint16(9), "9"},
		{accountID(12), "12"},
		{float64(12345), "12345"},
		{float64(1 << 53), "9007199254740992"},
		{float64(1<<53 + 2), ""}, // beyond what a float64 holds exactly
		{1.5, ""},
		{true, ""},
		{"", ""},
		{[]string{"a"}, ""},
		{nil, ""},
	}
	for _, c := range cases {
		data, err := scs.GobCodec{}.Encode(time.Now(), map[string]any{"user": c.value, "other": "x"})
		if err != nil {
			t.Fatal(err)
		}
		owner, ok := SessionValue(scs.GobCodec{}, "user")(data)
		if ok != (c.want != "") || owner != c.want {
			t.Fatalf("%T %v: got %q, %v: expected %q", c.value, c.value, owner, ok, c.want)
		}
	}
	data, _ := scs.GobCodec{}.Encode(time.Now(), map[string]any{"other": "x"})
	if owner, ok := SessionValue(scs.GobCodec{}, "user")(data); ok {
		t.Fatalf("got %q: expected no owner without the key", owner)
	}
	if owner, ok := SessionValue(scs.GobCodec{}, "user")([]byte("not gob")); ok {
		t.Fatalf("got %q: expected no owner for data the codec cannot decode", owner)
	}
	// A JSON codec decodes every number into a float64.
	data, _ = jsonCodec{}.Encode(time.Now(), map[string]any{"user": 1234567})
	if owner, ok := SessionValue(jsonCodec{}, "user")(data); !ok || owner != "1234567" {
		t.Fatalf("got %q, %v: expected 1234567 from a JSON codec", owner, ok)
	}
}

// jsonCodec is an scs.Codec on encoding/json, as some applications use.
type jsonCodec struct{}

func (jsonCodec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	return json.Marshal(struct {
		Deadline time.Time
		Values   map[string]any
	}{deadline, values})
}

func (jsonCodec) Decode(b []byte) (time.Time, map[string]any, error) {
	var v struct {
		Deadline time.Time
		Values   map[string]any
	}
	err := json.Unmarshal(b, &v)
	return v.Deadline, v.Values, err
}

func TestOwnerCommit(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	s := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) {
		o.Owner = SessionValue(scs.GobCodec{}, "user_id")
	})...)
	expiry := time.Now().Add(time.Hour)
	login, _ := scs.GobCodec{}.Encode(expiry, map[string]any{"user_id": 42})
	if err := s.Commit("token", login, expiry); err != nil {
		t.Fatal(err)
	}
	if o, ok := rawItem(t, s, "token")["owner"].(*types.AttributeValueMemberS); !ok || o.Value != "42" {
		t.Fatalf("got owner %v: expected \"42\"", rawItem(t, s, "token")["owner"])
	}
	// Logging out without a new token removes the owner.
	logout, _ := scs.GobCodec{}.Encode(expiry, map[string]any{})
	if err := s.Commit("token", logout, expiry); err != nil {
		t.Fatal(err)
	}
	if o, ok := rawItem(t, s, "token")["owner"]; ok {
		t.Fatalf("got owner %v: expected none after logout", o)
	}
	// A store without Owner stores none.
	plain := NewWithCleanupInterval(client, 0, fns...)
	if err := plain.Commit("plain", login, expiry); err != nil {
		t.Fatal(err)
	}
	if o, ok := rawItem(t, s, "plain")["owner"]; ok {
		t.Fatalf("got owner %v: expected none without Options.Owner", o)
	}
}

func TestOwnerNotIndexable(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	s := newStore(t, nil, withOwner, withLogger(&log))
	for i, owner := range []string{"", "SECRET\xff", strings.Repeat("SECRET", 342)} { // 2052 bytes
		token := fmt.Sprintf("token%d", i)
		if err := s.Commit(token, []byte(owner+"|data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatalf("%q: got %v: expected the Commit to succeed", owner, err)
		}
		item := rawItem(t, s, token)
		if _, ok := item["owner"]; ok || item == nil {
			t.Fatalf("got item %v: expected the session stored without an owner", item)
		}
	}
	got := log.String()
	if strings.Count(got, "level=WARN") != 1 || !strings.Contains(got, s.tableName) {
		t.Fatalf("got log %q: expected one warning naming the table", got)
	}
	if strings.Contains(got, "SECRET") {
		t.Fatalf("got log %q: expected no owner value in it", got)
	}
	// No request either: DynamoDB could not hold such an owner.
	for _, owner := range []string{"", "SECRET\xff"} {
		if n, err := s.DeleteOwner(context.Background(), owner); n != 0 || err != nil {
			t.Fatalf("got %d, %v: expected 0, nil", n, err)
		}
	}
}

func TestOwnerOddCharacters(t *testing.T) {
	t.Parallel()
	s := newStore(t, nil, withOwner)
	owners := []string{"a b", "ünï-用户", "#sweeper-lease", `"quoted" 'and' \back`, "%s%n", strings.Repeat("é", maxKeyBytes/2)}
	for i, owner := range owners {
		for _, token := range []string{fmt.Sprintf("t%d-a", i), fmt.Sprintf("t%d-b", i)} {
			if err := s.Commit(token, []byte(owner+"|data"), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, owner := range owners {
		waitOwnerTokens(t, s, owner, []string{fmt.Sprintf("t%d-a", i), fmt.Sprintf("t%d-b", i)})
		if n, err := s.DeleteOwner(context.Background(), owner); n != 2 || err != nil {
			t.Fatalf("owner %q: got %d, %v: expected 2 deleted", owner, n, err)
		}
	}
	if all, err := s.All(); err != nil || len(all) != 0 {
		t.Fatalf("got %d sessions, %v: expected none left", len(all), err)
	}
}

// TestOwnerTokensAndDeleteOwner pages through a user's many sessions, with
// expired ones among them, without a Scan.
func TestOwnerTokensAndDeleteOwner(t *testing.T) {
	t.Parallel()
	spy := &ownerSpy{Client: newClient(t), queryLimit: 40}
	s := newStoreWith(t, spy, clockAhead, withOwner)
	var live []string
	for i := range 150 {
		token := fmt.Sprintf("u1-%03d", i)
		expiry := liveAt()
		if i%10 == 0 {
			expiry = expiredAt()
		} else {
			live = append(live, token)
		}
		if err := s.Commit(token, []byte("u1|data"), expiry); err != nil {
			t.Fatal(err)
		}
	}
	for _, token := range []string{"u2-a", "u2-b"} {
		if err := s.Commit(token, []byte("u2|data"), liveAt()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit("nobody", []byte("no owner"), liveAt()); err != nil {
		t.Fatal(err)
	}

	waitOwnerTokens(t, s, "u1", live)
	if q := spy.lastQuery; aws.ToString(q.IndexName) != "owner-index" || q.ConsistentRead != nil {
		t.Fatalf("got index %q, consistent %v: expected an eventually consistent Query of owner-index", aws.ToString(q.IndexName), q.ConsistentRead)
	}
	queries, gets := spy.queries.Load(), spy.batchGets.Load()
	if _, err := s.OwnerTokens(context.Background(), "u1"); err != nil {
		t.Fatal(err)
	}
	// 150 keys at 40 a page: 4 pages and the empty one that ends them; 100
	// keys a BatchGetItem: 2.
	if q, g := spy.queries.Load()-queries, spy.batchGets.Load()-gets; q < 4 || g != 2 {
		t.Fatalf("got %d Queries, %d BatchGetItems: expected at least 4 and 2", q, g)
	}

	n, err := s.DeleteOwner(context.Background(), "u1")
	if err != nil || n != 150 {
		t.Fatalf("got %d, %v: expected all 150 sessions, expired ones too, deleted", n, err)
	}
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(all)); !slices.Equal(keys, []string{"nobody", "u2-a", "u2-b"}) {
		t.Fatalf("got %v left: expected the other owner's and the ownerless sessions", keys)
	}
	if tokens, err := s.OwnerTokens(context.Background(), "u1"); err != nil || len(tokens) != 0 {
		t.Fatalf("got %v, %v: expected no tokens left", tokens, err)
	}
	if n := spy.scans.Load(); n != 1 { // the All above
		t.Fatalf("got %d Scans: expected none but All's", n)
	}
}

// TestDeleteOwnerKeyPrefix: a store deletes only its own prefix's sessions,
// and never the sweeper lease.
func TestDeleteOwnerKeyPrefix(t *testing.T) {
	t.Parallel()
	fns := newTable(t, withOwner)
	client := newClient(t)
	app1 := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.KeyPrefix = "app1:" })...)
	app2 := NewWithCleanupInterval(client, 0, append(fns, func(o *Options) { o.KeyPrefix = "app2:" })...)
	for _, s := range []*DynamoStore{app1, app2} {
		if err := s.Commit("a", []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// A lease item that somehow carries the owner attribute.
	putRaw(t, app1, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: "app1:" + sessionitem.LeaseToken},
		"owner":       &types.AttributeValueMemberS{Value: "u1"},
	})
	// An item under the fence with the owner, but no session: no data.
	noData := map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: "app1:nodata"},
		"owner":       &types.AttributeValueMemberS{Value: "u1"},
		"expires":     &types.AttributeValueMemberN{Value: strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)},
	}
	putRaw(t, app1, noData)
	waitOwnerTokens(t, app1, "u1", []string{"a"})
	waitOwnerTokens(t, app2, "u1", []string{"a"})
	waitUntil(t, "the index to list all four items of u1", func() bool {
		out, err := client.Query(context.Background(), &dynamodb.QueryInput{
			TableName: &app1.tableName, IndexName: aws.String("owner-index"),
			KeyConditionExpression:    aws.String("#o = :o"),
			ExpressionAttributeNames:  map[string]string{"#o": "owner"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":o": &types.AttributeValueMemberS{Value: "u1"}},
		})
		return err == nil && len(out.Items) == 4
	})
	if n, err := app1.DeleteOwner(context.Background(), "u1"); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected 1 deleted", n, err)
	}
	if got := rawItem(t, app1, "app1:nodata"); !reflect.DeepEqual(got, noData) {
		t.Fatalf("got %v: expected the item that is no session kept as it was", got)
	}
	if rawItem(t, app1, "app2:a") == nil {
		t.Fatal("expected the other prefix's session kept")
	}
	if rawItem(t, app1, "app1:"+sessionitem.LeaseToken) == nil {
		t.Fatal("expected the sweeper lease kept")
	}
}

// TestDeleteOwnerChangedHands: a session that changes owner between the
// Query and its delete is kept.
func TestDeleteOwnerChangedHands(t *testing.T) {
	t.Parallel()
	spy := &ownerSpy{Client: newClient(t)}
	s := newStore(t, spy, withOwner)
	for _, token := range []string{"stays", "moves"} {
		if err := s.Commit(token, []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	waitOwnerTokens(t, s, "u1", []string{"moves", "stays"})
	var once sync.Once
	spy.beforePut = func(ctx context.Context, in *dynamodb.PutItemInput) error {
		var err error
		if sessionitem.Revoked(in.Item) && in.Item["session_key"].(*types.AttributeValueMemberS).Value == "moves" {
			once.Do(func() { err = s.CommitCtx(ctx, "moves", []byte("u2|data"), time.Now().Add(time.Hour)) })
		}
		return err
	}
	if n, err := s.DeleteOwner(context.Background(), "u1"); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected 1 deleted", n, err)
	}
	if b, found, err := s.Find("moves"); err != nil || !found || string(b) != "u2|data" {
		t.Fatalf("got %q, %v, %v: expected the session that changed hands kept", b, found, err)
	}
	if !sessionitem.Revoked(rawItem(t, s, "stays")) {
		t.Fatal("expected u1's other session deleted")
	}
}

func TestDeleteOwnerErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A Client without Query or BatchGetItem.
	s := newStore(t, &spyClient{Client: newClient(t)}, withOwner)
	if err := s.Commit("token", []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteOwner(ctx, "u1"); !errors.Is(err, ErrClientMethod) || !strings.Contains(err.Error(), "no Query method") {
		t.Fatalf("got %v: expected an error about the missing Query method", err)
	}
	if _, err := s.OwnerTokens(ctx, "u1"); !errors.Is(err, ErrClientMethod) || !strings.Contains(err.Error(), "no BatchGetItem method") {
		t.Fatalf("got %v: expected an error about the missing BatchGetItem method", err)
	}

	// A CachedStore over a store that is no OwnerStore.
	if _, err := NewCached(memstore.NewWithCleanupInterval(0)).DeleteOwner(ctx, "u1"); !errors.Is(err, ErrClientMethod) || !strings.Contains(err.Error(), "not an OwnerStore") {
		t.Fatalf("got %v: expected an error about the backing store", err)
	}
}

// TestOwnerIndexMissing: on a table without the index, DeleteOwner and
// OwnerTokens say what to do, and CreateTable adds the index where the
// endpoint can, or says it could not.
func TestOwnerIndexMissing(t *testing.T) {
	t.Parallel()
	ctx := setupContext(t) // CreateTable waits for the index
	// CreateTable adds an index to the table: see ddblocal.ForNewIndex.
	client := ddblocal.NewClient(ddblocal.ForNewIndex(t, endpoint))
	name := newTableName(t)
	ddblocal.CreateTableWithoutTTL(t, client, name, "session_key", types.ScalarAttributeTypeS)
	setName := func(o *Options) { o.TableName = name }
	s := NewWithCleanupInterval(client, 0, setName, withOwner)
	if err := s.Commit("token", []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("got %v: expected Commit to work without the index", err)
	}
	for _, err := range []error{
		func() error { _, err := s.DeleteOwner(ctx, "u1"); return err }(),
		func() error { _, err := s.OwnerTokens(ctx, "u1"); return err }(),
	} {
		if !errors.Is(err, ErrIndexNotFound) || !strings.Contains(err.Error(), `has no index "owner-index"`) || !strings.Contains(err.Error(), "create-table") {
			t.Fatalf("got %v: expected an error naming the missing index and create-table", err)
		}
	}

	err := CreateTable(ctx, client, setName, quietLog)
	if ddblocal.IsDynalite() {
		// dynalite cannot add an index to an on-demand table: an error,
		// never a false success.
		if err == nil || !strings.Contains(err.Error(), `add index "owner-index"`) {
			t.Fatalf("got %v: expected an error adding the index on dynalite", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	// The index fills with the sessions already in the table.
	waitOwnerTokens(t, s, "u1", []string{"token"})
	if n, err := s.DeleteOwner(ctx, "u1"); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected 1 deleted once the index exists", n, err)
	}
}

// TestOwnerIndexProvisioned: on a provisioned table the added index takes
// the table's throughput. DynamoDB Local only: dynalite does not add indexes
// to existing tables.
func TestOwnerIndexProvisioned(t *testing.T) {
	t.Parallel()
	if ddblocal.IsDynalite() {
		return // see TestOwnerIndexMissing for what dynalite does
	}
	ctx := setupContext(t) // CreateTable waits for the index
	client := newClient(t)
	name := newTableName(t)
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:             aws.String(name),
		BillingMode:           types.BillingModeProvisioned,
		ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(7), WriteCapacityUnits: aws.Int64(3)},
		AttributeDefinitions:  []types.AttributeDefinition{{AttributeName: aws.String("session_key"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:             []types.KeySchemaElement{{AttributeName: aws.String("session_key"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}) })
	if err := CreateTable(ctx, client, func(o *Options) { o.TableName = name }, quietLog); err != nil {
		t.Fatal(err)
	}
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	o := resolveOptions(0, nil)
	idx, err := sessionitem.OwnerIndex(desc.Table, o.OwnerIndex, o.OwnerAttribute)
	if err != nil || idx == nil || idx.IndexStatus != types.IndexStatusActive {
		t.Fatalf("got %+v, %v: expected an ACTIVE owner index", idx, err)
	}
	if pt := idx.ProvisionedThroughput; aws.ToInt64(pt.ReadCapacityUnits) != 7 || aws.ToInt64(pt.WriteCapacityUnits) != 3 {
		t.Fatalf("got %d/%d: expected the table's 7 read and 3 write units", aws.ToInt64(pt.ReadCapacityUnits), aws.ToInt64(pt.WriteCapacityUnits))
	}
}

// capacitySpy asks DynamoDB for the capacity every PutItem consumed, index
// by index, and records the owner index's share.
type capacitySpy struct {
	Client
	mu         sync.Mutex
	indexUnits []float64
}

func (c *capacitySpy) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	copied := *in
	copied.ReturnConsumedCapacity = types.ReturnConsumedCapacityIndexes
	out, err := c.Client.PutItem(ctx, &copied, optFns...)
	if err == nil {
		var units float64
		if cc := out.ConsumedCapacity; cc != nil {
			if idx, ok := cc.GlobalSecondaryIndexes["owner-index"]; ok {
				units = aws.ToFloat64(idx.CapacityUnits)
			}
		}
		c.mu.Lock()
		c.indexUnits = append(c.indexUnits, units)
		c.mu.Unlock()
	}
	return out, err
}

// TestOwnerIndexCapacity: the owner index costs a write when a session
// gains, changes or loses its owner, and nothing on the Commits between.
// dynalite reports no per-index capacity, so only DynamoDB Local checks the
// units; both check the item.
func TestOwnerIndexCapacity(t *testing.T) {
	t.Parallel()
	spy := &capacitySpy{Client: newClient(t)}
	s := newStore(t, spy, withOwner)
	expiry := time.Now().Add(time.Hour)
	if err := s.Commit("token", []byte("anonymous"), expiry); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("token", []byte("u1|login"), expiry); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		expiry = expiry.Add(time.Second)
		if err := s.Commit("token", fmt.Appendf(nil, "u1|request %d", i), expiry); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit("token", []byte("u2|switched"), expiry); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("token", []byte("logged out"), expiry); err != nil {
		t.Fatal(err)
	}
	if o, ok := rawItem(t, s, "token")["owner"]; ok {
		t.Fatalf("got owner %v: expected none after logout", o)
	}
	if ddblocal.IsDynalite() {
		return
	}
	units := spy.indexUnits
	if len(units) != 104 {
		t.Fatalf("got %d PutItems: expected 104", len(units))
	}
	if units[0] != 0 {
		t.Fatalf("got %v index units for a session without owner: expected 0", units[0])
	}
	if units[1] < 1 {
		t.Fatalf("got %v index units for the login: expected at least 1", units[1])
	}
	for i, u := range units[2:102] {
		if u != 0 {
			t.Fatalf("got %v index units for Commit %d with the same owner: expected 0", u, i)
		}
	}
	if units[102] < 1 || units[103] < 1 {
		t.Fatalf("got %v, %v index units for a change of owner and a logout: expected at least 1 each", units[102], units[103])
	}
}

// TestOwnerTooLarge: the owner, and the time of the last write that a
// session with one records, count toward the 400 KB item limit.
func TestOwnerTooLarge(t *testing.T) {
	t.Parallel()
	owner := "owner-of-the-session"
	now := time.Now()
	s := newStoreWith(t, nil, hooks{now: func() time.Time { return now }}, func(o *Options) { o.Owner = func([]byte) (string, bool) { return owner, true } })
	expiry := now.Add(time.Hour)
	exp, expMs := sessionitem.ExpiryValues(expiry)
	fits := maxItemBytes - len("session_key") - len("token") - len("data") -
		len("expires") - numberSize(exp) - len("expires_ms") - numberSize(expMs) -
		len("owner") - len(owner) - len(sessionitem.LastWriteAttribute) - numberSize(strconv.FormatInt(now.UnixMilli(), 10))
	big := bytes.Repeat([]byte{'x'}, fits)
	if err := s.Commit("token", big, expiry); err != nil {
		t.Fatalf("got %v: expected an item of exactly 400 KB, owner included, to be stored", err)
	}
	if err := s.Commit("token", append(big, 'x'), expiry); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v: expected ErrTooLarge one byte over", err)
	}
}

func TestCachedDeleteOwner(t *testing.T) {
	t.Parallel()
	s := newStore(t, &ownerSpy{Client: newClient(t)}, withOwner)
	c := NewCached(s)
	ctx := context.Background()
	for _, token := range []string{"a", "b"} {
		if err := c.Commit(token, []byte("u1|data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		mustFind(t, c, token, "u1|data") // cached
	}
	waitOwnerTokens(t, s, "u1", []string{"a", "b"})
	if n, err := c.DeleteOwner(ctx, "u1"); n != 2 || err != nil {
		t.Fatalf("got %d, %v: expected 2 deleted", n, err)
	}
	for _, token := range []string{"a", "b"} {
		mustFind(t, c, token, "")
	}
}

// revokeApp is one instance of a web application: scs with HashTokenInStore
// over a CachedStore, whose users can log out everywhere.
func revokeApp(t *testing.T, cached *CachedStore) *httptest.Server {
	sm := scs.New()
	sm.Store = cached
	sm.HashTokenInStore = true
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), "user_id", r.PostFormValue("user"))
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, sm.GetString(r.Context(), "user_id"))
	})
	mux.HandleFunc("POST /logout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		n, err := cached.DeleteOwner(r.Context(), sm.GetString(r.Context(), "user_id"))
		if err == nil {
			err = sm.Destroy(r.Context()) // so LoadAndSave does not write it back
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)
	return srv
}

// browser is one client with a cookie jar of its own.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, client: &http.Client{Jar: jar}}
}

func (b *browser) do(method, url string, form url.Values) string {
	b.t.Helper()
	var res *http.Response
	var err error
	if method == http.MethodPost {
		res, err = b.client.PostForm(url, form)
	} else {
		res, err = b.client.Get(url)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		b.t.Fatalf("%s %s: got %d %q, %v", method, url, res.StatusCode, body, err)
	}
	return string(body)
}

func (b *browser) cookie(srv *httptest.Server) string {
	u, _ := url.Parse(srv.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "session" {
			return c.Value
		}
	}
	return ""
}

// TestRevokeHashTokenInStore: two browsers logged in as one user on two
// instances of an application, with scs's HashTokenInStore; one logs out
// everywhere and both old cookies stop working, at once where the instances
// share a cache and within MaxStale where each has its own.
func TestRevokeHashTokenInStore(t *testing.T) {
	t.Parallel()
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "in-process caches", true: "shared cache"}[shared], func(t *testing.T) {
			t.Parallel()
			fns := newTable(t, func(o *Options) { o.Owner = SessionValue(scs.GobCodec{}, "user_id") })
			var cacheOpts []func(*CacheOptions)
			if shared {
				// One layer that both instances share (rediscache's tests
				// do the same on Redis).
				layer := newMemCache(defaultMaxBytes, defaultMaxEntries)
				cacheOpts = append(cacheOpts, func(o *CacheOptions) { o.Cache = layer })
			}
			store1 := NewWithCleanupInterval(newClient(t), 0, fns...)
			store2 := NewWithCleanupInterval(newClient(t), 0, fns...)
			cache1, cache2 := NewCached(store1, cacheOpts...), NewCached(store2, cacheOpts...)
			var offset atomic.Int64
			setClock(cache2, &offset)
			app1, app2 := revokeApp(t, cache1), revokeApp(t, cache2)

			alice, aliceTablet := newBrowser(t), newBrowser(t)
			alice.do(http.MethodPost, app1.URL+"/login", url.Values{"user": {"u-7"}})
			aliceTablet.do(http.MethodPost, app2.URL+"/login", url.Values{"user": {"u-7"}})
			if got := aliceTablet.do(http.MethodGet, app2.URL+"/whoami", nil); got != "u-7" {
				t.Fatalf("got %q: expected the tablet logged in", got)
			}
			// The store holds hashed tokens, which scs's Iterate recipe
			// cannot delete; the index finds them all the same.
			waitUntil(t, "both sessions in the owner index", func() bool {
				tokens, err := store1.OwnerTokens(context.Background(), "u-7")
				return err == nil && len(tokens) == 2
			})
			tokens, _ := store1.OwnerTokens(context.Background(), "u-7")
			if slices.Contains(tokens, alice.cookie(app1)) || slices.Contains(tokens, aliceTablet.cookie(app2)) {
				t.Fatal("expected the store to hold hashed tokens, not the cookies")
			}

			if got := alice.do(http.MethodPost, app1.URL+"/logout-everywhere", nil); got != "2" {
				t.Fatalf("got %q: expected 2 sessions revoked", got)
			}
			if got := alice.do(http.MethodGet, app1.URL+"/whoami", nil); got != "" {
				t.Fatalf("got %q: expected the revoking browser logged out", got)
			}
			if got := aliceTablet.do(http.MethodGet, app1.URL+"/whoami", nil); got != "" {
				t.Fatalf("got %q: expected the tablet logged out on the other instance", got)
			}
			got := aliceTablet.do(http.MethodGet, app2.URL+"/whoami", nil)
			if shared {
				if got != "" {
					t.Fatalf("got %q: expected the tablet logged out at once with a shared cache", got)
				}
				return
			}
			// The instance that cached the tablet's session serves it until
			// MaxStale, as documented...
			if got != "u-7" {
				t.Fatalf("got %q: expected the other instance's cached copy until MaxStale", got)
			}
			// ...and not a moment after.
			offset.Store(int64(10 * time.Second))
			if got := aliceTablet.do(http.MethodGet, app2.URL+"/whoami", nil); got != "" {
				t.Fatalf("got %q: expected the tablet logged out after MaxStale", got)
			}
		})
	}
}

// heldApp is one instance of a web application whose GET /hold handler,
// once a test arms it, waits until the test releases it and then changes
// the session, so that LoadAndSave commits the session it loaded before
// whatever the test did meanwhile.
type heldApp struct {
	*httptest.Server
	reached, release chan struct{}
}

func newHeldApp(t *testing.T, cached *CachedStore) *heldApp {
	sm := scs.New()
	sm.Store = cached
	sm.HashTokenInStore = true
	sm.IdleTimeout = time.Hour // every request commits
	app := &heldApp{reached: make(chan struct{}), release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), "user_id", r.PostFormValue("user"))
	})
	mux.HandleFunc("POST /visit", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "visits", sm.GetInt(r.Context(), "visits")+1)
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s/%d", sm.GetString(r.Context(), "user_id"), sm.GetInt(r.Context(), "visits"))
	})
	mux.HandleFunc("GET /hold", func(w http.ResponseWriter, r *http.Request) {
		close(app.reached)
		<-app.release
		sm.Put(r.Context(), "visits", sm.GetInt(r.Context(), "visits")+1)
	})
	mux.HandleFunc("POST /logout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		n, err := cached.DeleteOwner(r.Context(), sm.GetString(r.Context(), "user_id"))
		if err == nil {
			err = sm.Destroy(r.Context())
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("POST /logout-others", func(w http.ResponseWriter, r *http.Request) {
		n, err := cached.DeleteOwnerExcept(r.Context(), sm.GetString(r.Context(), "user_id"), cached.CurrentSessionID(r.Context(), sm))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("POST /limit-one", func(w http.ResponseWriter, r *http.Request) {
		n, err := cached.LimitOwner(r.Context(), sm.GetString(r.Context(), "user_id"), 1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n)
	})
	app.Server = httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(app.Close)
	return app
}

// request sends a request with the session cookie given, as an attacker
// replaying an old cookie would, and returns the body and the new cookie,
// if the response set one.
func request(t *testing.T, method, url, cookie string, form url.Values) (body, newCookie string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: cookie})
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: got %d %q, %v", method, url, res.StatusCode, b, err)
	}
	for _, c := range res.Cookies() {
		if c.Name == "session" && c.MaxAge >= 0 {
			newCookie = c.Value
		}
	}
	return string(b), newCookie
}

// twoInstances returns two applications on one table, each with a store,
// a client and an in-process cache of its own.
func twoInstances(t *testing.T) (*heldApp, *heldApp, *DynamoStore) {
	fns := newTable(t, func(o *Options) { o.Owner = SessionValue(scs.GobCodec{}, "user_id") })
	s1 := NewWithCleanupInterval(newClient(t), 0, fns...)
	s2 := NewWithCleanupInterval(newClient(t), 0, fns...)
	return newHeldApp(t, NewCached(s1)), newHeldApp(t, NewCached(s2)), s1
}

// TestRevokeWithRequestInFlight: a request that loaded the session before
// the user logged out everywhere on another instance commits it when it
// ends; the old cookie stays logged out on both instances.
func TestRevokeWithRequestInFlight(t *testing.T) {
	t.Parallel()
	app1, app2, store := twoInstances(t)
	_, cookie := request(t, http.MethodPost, app1.URL+"/login", "", url.Values{"user": {"u-9"}})
	if got, _ := request(t, http.MethodGet, app2.URL+"/whoami", cookie, nil); got != "u-9/0" {
		t.Fatalf("got %q: expected logged in on both instances", got)
	}
	waitUntil(t, "the session in the owner index", func() bool {
		tokens, err := store.OwnerTokens(context.Background(), "u-9")
		return err == nil && len(tokens) == 1
	})

	held := make(chan string)
	go func() {
		body, _ := request(t, http.MethodGet, app1.URL+"/hold", cookie, nil)
		held <- body
	}()
	waitChan(t, app1.reached, "the held request to load the session")
	if got, _ := request(t, http.MethodPost, app2.URL+"/logout-everywhere", cookie, nil); got != "1" {
		t.Fatalf("got %q: expected 1 session revoked", got)
	}
	close(app1.release)
	waitChan(t, held, "the held request to end")

	for _, app := range []*heldApp{app1, app2, app1} {
		if got, _ := request(t, http.MethodGet, app.URL+"/whoami", cookie, nil); got != "/0" {
			t.Fatalf("got %q: expected the old cookie logged out on both instances", got)
		}
	}
	if tokens, err := store.OwnerTokens(context.Background(), "u-9"); err != nil || len(tokens) != 0 {
		t.Fatalf("got %v, %v: expected no live session of the user", tokens, err)
	}
}

// TestRenewTokenWithRequestInFlight: a request of the old token that ends
// after RenewToken (a log in) on another instance does not bring the old
// token back, so a fixated cookie stays worthless.
func TestRenewTokenWithRequestInFlight(t *testing.T) {
	t.Parallel()
	app1, app2, _ := twoInstances(t)
	_, old := request(t, http.MethodPost, app1.URL+"/visit", "", nil) // an anonymous session
	if got, _ := request(t, http.MethodGet, app2.URL+"/whoami", old, nil); got != "/1" {
		t.Fatalf("got %q: expected the anonymous session on both instances", got)
	}
	held := make(chan string)
	go func() {
		body, _ := request(t, http.MethodGet, app1.URL+"/hold", old, nil)
		held <- body
	}()
	waitChan(t, app1.reached, "the held request to load the session")
	_, renewed := request(t, http.MethodPost, app2.URL+"/login", old, url.Values{"user": {"u-3"}})
	if renewed == "" || renewed == old {
		t.Fatalf("got cookie %q: expected a new token", renewed)
	}
	close(app1.release)
	waitChan(t, held, "the held request to end")

	for _, app := range []*heldApp{app1, app2} {
		if got, _ := request(t, http.MethodGet, app.URL+"/whoami", old, nil); got != "/0" {
			t.Fatalf("got %q: expected the old token worthless", got)
		}
		if got, _ := request(t, http.MethodGet, app.URL+"/whoami", renewed, nil); got != "u-3/1" {
			t.Fatalf("got %q: expected the new token logged in", got)
		}
	}
}

// waitIndexed waits until the owner index lists key for owner.
func waitIndexed(t *testing.T, s *DynamoStore, owner, key string) {
	t.Helper()
	waitUntil(t, "the owner index to list "+key, func() bool {
		out, err := newClient(t).Query(context.Background(), &dynamodb.QueryInput{
			TableName:                 aws.String(s.tableName),
			IndexName:                 aws.String(sessionitem.DefaultOwnerIndex),
			KeyConditionExpression:    aws.String("#o = :o"),
			ExpressionAttributeNames:  map[string]string{"#o": "owner"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":o": &types.AttributeValueMemberS{Value: owner}},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range out.Items {
			if k, ok := it["session_key"].(*types.AttributeValueMemberS); ok && k.Value == key {
				return true
			}
		}
		return false
	})
}

// TestOwnerTokensOnlyWhatFindServes: OwnerTokens (the tool's sessions)
// lists only sessions Find would serve: not an expired sealed session a
// writer revived, nor an unsealed one planted under RequireEncryption.
func TestOwnerTokensOnlyWhatFindServes(t *testing.T) {
	t.Parallel()
	a := newAEAD(t)
	s := newStore(t, nil, withOwner, withEncryption(a), quietLog, func(o *Options) { o.RequireEncryption = true })
	// An expired sealed session, revived by a writer.
	if err := s.Commit("tokA", []byte("u1|secret"), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	item := rawItem(t, s, "tokA")
	year := time.Now().AddDate(1, 0, 0)
	item["expires"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(year.Unix(), 10)}
	item["expires_ms"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(year.UnixMilli(), 10)}
	putRaw(t, s, item)
	// An unsealed item planted under RequireEncryption.
	putRaw(t, s, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: "tokB"},
		"data":        &types.AttributeValueMemberB{Value: []byte("u1|planted")},
		"owner":       &types.AttributeValueMemberS{Value: "u1"},
		"expires":     &types.AttributeValueMemberN{Value: strconv.FormatInt(year.Unix(), 10)},
	})
	waitIndexed(t, s, "u1", "tokA")
	waitIndexed(t, s, "u1", "tokB")
	_, foundA, _ := s.Find("tokA")
	_, foundB, _ := s.Find("tokB")
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := s.OwnerTokens(context.Background(), "u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 0 {
		t.Fatalf("Find: tokA %v, tokB %v; All: %d sessions; but OwnerTokens lists %v as live: expected the one rule of a live session", foundA, foundB, len(all), tokens)
	}
}

// userWrapper is a user's wrapper around a DynamoStore that forwards each
// method by hand, as a logging or tracing wrapper would, rather than
// embedding the *DynamoStore.
type userWrapper struct{ s *DynamoStore }

func (w userWrapper) Find(token string) ([]byte, bool, error) { return w.s.Find(token) }
func (w userWrapper) Commit(token string, b []byte, expiry time.Time) error {
	return w.s.Commit(token, b, expiry)
}
func (w userWrapper) Delete(token string) error { return w.s.Delete(token) }
func (w userWrapper) FindExpiryCtx(ctx context.Context, token string) ([]byte, time.Time, bool, error) {
	return w.s.FindExpiryCtx(ctx, token)
}
func (w userWrapper) CommitStoredCtx(ctx context.Context, token string, b []byte, expiry time.Time) (bool, error) {
	return w.s.CommitStoredCtx(ctx, token, b, expiry)
}
func (w userWrapper) Options() Options { return w.s.Options() }
func (w userWrapper) DeleteOwnerFunc(ctx context.Context, owner string, fn func(context.Context, string, func(context.Context) error) error) (int, error) {
	return w.s.DeleteOwnerFunc(ctx, owner, fn)
}

// TestCachedWrapper: a CachedStore in front of a user's wrapper that
// implements TableStore and OwnerStore does what it does in front of the
// DynamoStore itself: DeleteOwner drops the cached copies, and a shared
// cache keeps two KeyPrefixes' copies apart.
func TestCachedWrapper(t *testing.T) {
	t.Parallel()
	fns := newTable(t, withOwner)
	client := &ownerSpy{Client: newClient(t)}
	appA := newDynamoStore(client, 0, hooks{}, append(fns, func(o *Options) { o.KeyPrefix = "a:" }))
	appB := newDynamoStore(client, 0, hooks{}, append(fns, func(o *Options) { o.KeyPrefix = "b:" }))
	shared := newMemCache(defaultMaxBytes, defaultMaxEntries)
	ca := NewCached(userWrapper{appA}, func(o *CacheOptions) { o.Cache = shared })
	cb := NewCached(userWrapper{appB}, func(o *CacheOptions) { o.Cache = shared })
	ctx := context.Background()
	if err := ca.Commit("tok", []byte("u1|a's"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, ca, "tok", "u1|a's") // cached
	mustFind(t, cb, "tok", "")       // b's own, which does not exist
	if err := cb.Commit("tok", []byte("u1|b's"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mustFind(t, ca, "tok", "u1|a's")
	mustFind(t, cb, "tok", "u1|b's")

	waitOwnerTokens(t, appA, "u1", []string{"tok"})
	if n, err := ca.DeleteOwner(ctx, "u1"); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected a's one session deleted", n, err)
	}
	mustFind(t, ca, "tok", "")
	mustFind(t, cb, "tok", "u1|b's")
}

// TestNewNamesMissingMethods: a store with Options.Owner whose Client lacks
// Query or BatchGetItem says so, naming the method, when it is built; one
// whose Client has both, or without Owner, says nothing.
func TestNewNamesMissingMethods(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	for _, tc := range []struct {
		name   string
		client Client
		owner  bool
		want   []string
	}{
		{"neither", &spyClient{Client: newClient(t)}, true, []string{"no Query method", "no BatchGetItem method"}},
		{"both", &ownerSpy{Client: newClient(t)}, true, nil},
		{"no Owner", &spyClient{Client: newClient(t)}, false, nil},
	} {
		var logs syncBuffer
		opts := append(fns, withLogger(&logs))
		if tc.owner {
			opts = append(opts, withOwner)
		}
		NewWithCleanupInterval(tc.client, 0, opts...)
		for _, want := range tc.want {
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), want) {
				t.Errorf("%s: got log %q: expected an Error naming %q", tc.name, logs.String(), want)
			}
		}
		if tc.want == nil && logs.String() != "" {
			t.Errorf("%s: got log %q: expected none", tc.name, logs.String())
		}
	}
}
