package dynamostore

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/ddblocal"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

func TestCreateTable(t *testing.T) {
	t.Parallel()
	var logBuf syncBuffer
	fns := newTable(t, func(o *Options) {
		o.ExpiryAttribute = "ttl"
		o.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	})
	client := newClient(t)
	ctx := setupContext(t) // CreateTable waits for the index
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
	// The owner index, sparse and keys only, comes with the table.
	idx, err := sessionitem.OwnerIndex(desc.Table, o.OwnerIndex, o.OwnerAttribute)
	if err != nil || idx == nil || idx.IndexStatus != types.IndexStatusActive || idx.Projection.ProjectionType != types.ProjectionTypeKeysOnly {
		t.Fatalf("got index %+v, %v: expected an ACTIVE KEYS_ONLY index %q on %q", idx, err, o.OwnerIndex, o.OwnerAttribute)
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
	// And so is an owner index on another attribute.
	err = CreateTable(ctx, client, append(fns, func(o *Options) { o.OwnerAttribute = "user" })...)
	if err == nil || !strings.Contains(err.Error(), `index "owner-index" is not keyed on "user" alone`) {
		t.Fatalf("got %v: expected an owner index error", err)
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
	ctx := setupContext(t) // CreateTable waits for the index
	name := newTableName(t)
	ddblocal.CreateTableWithoutTTL(t, client, name, "session_key", types.ScalarAttributeTypeN)
	err := CreateTable(ctx, client, func(o *Options) { o.TableName = name })
	if err == nil || !strings.Contains(err.Error(), `the table's key is hash "session_key" (N); want a partition key "session_key" of type S`) {
		t.Fatalf("got %v: expected a key type error", err)
	}
}

// TestSetupDeadline: a test's wait for DynamoDB to make an index ACTIVE has
// a deadline, and an endpoint whose index never gets there fails the test
// with a message naming the wait, rather than hanging it.
func TestSetupDeadline(t *testing.T) {
	t.Parallel()
	active := regexp.MustCompile(`"IndexStatus"\s*:\s*"ACTIVE"`)
	stuck, stop, err := ddblocal.Rewrite(endpoint, func(target string, body []byte) []byte {
		if strings.HasSuffix(target, ".DescribeTable") {
			return active.ReplaceAll(body, []byte(`"IndexStatus":"CREATING"`))
		}
		return body
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	name := newTableName(t)
	client := ddblocal.NewClient(stuck)
	t.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	var tb failedTB
	ddblocal.SetupWithin(&tb, 2*time.Second, "CreateTable "+name, func(ctx context.Context) error {
		return CreateTable(ctx, client, func(o *Options) { o.TableName = name }, quietLog)
	})
	want := fmt.Sprintf(`CreateTable %s: not ready within 2s, so the endpoint is not doing what DynamoDB does: dynamostore: create table %q: wait until index "owner-index" is active: `, name, name)
	if !strings.HasPrefix(tb.msg, want) {
		t.Fatalf("got %q: expected the test to fail with %q...", tb.msg, want)
	}
}

// failedTB records the message a helper fails the test with.
type failedTB struct {
	msg string
}

func (*failedTB) Helper()        {}
func (*failedTB) Cleanup(func()) {}
func (tb *failedTB) Fatalf(format string, args ...any) {
	tb.msg = fmt.Sprintf(format, args...)
}
