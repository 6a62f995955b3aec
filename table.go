package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// CreateTableAPIClient is the part of the DynamoDB API that CreateTable
// calls. *dynamodb.Client satisfies it.
type CreateTableAPIClient interface {
	CreateTable(ctx context.Context, params *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, params *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTable(ctx context.Context, params *dynamodb.UpdateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	DescribeTimeToLive(ctx context.Context, params *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTimeToLive(ctx context.Context, params *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// CreateTable creates the session table described by the options (the same
// option functions New takes, of which TableName, KeyAttribute,
// ExpiryAttribute, OwnerAttribute, OwnerIndex and Logger concern a table;
// the others are checked as New checks them, and otherwise ignored):
// on-demand billing, a partition key of type S
// named KeyAttribute, no sort key, and the global secondary index OwnerIndex
// on OwnerAttribute with projection KEYS_ONLY, which DeleteOwner and
// OwnerTokens query. The index is sparse: it holds only sessions with an
// owner, so it costs nothing until a store sets Options.Owner. CreateTable
// waits until the table is ACTIVE and then enables TTL on ExpiryAttribute,
// so DynamoDB deletes expired sessions by itself.
//
// On an existing table with that key schema, it adds what is missing: the
// owner index (with UpdateTable, taking the table's own read and write
// capacity where the table is provisioned, and waiting until the index is
// ACTIVE, which on a large table takes as long as DynamoDB needs to fill it:
// bound it with ctx) and TTL. It returns an error when the table exists with
// another key schema, or has an index named OwnerIndex on another attribute,
// and, before any request, an error wrapping ErrInvalidOptions where New
// would panic.
//
// Where the endpoint has no TTL API (some DynamoDB emulators), CreateTable
// still creates the table, logs a warning through Options.Logger and returns
// nil.
//
// The same table with the AWS CLI, for the default options:
//
//	aws dynamodb create-table --table-name sessions \
//	  --attribute-definitions AttributeName=session_key,AttributeType=S AttributeName=owner,AttributeType=S \
//	  --key-schema AttributeName=session_key,KeyType=HASH \
//	  --global-secondary-indexes 'IndexName=owner-index,KeySchema=[{AttributeName=owner,KeyType=HASH}],Projection={ProjectionType=KEYS_ONLY}' \
//	  --billing-mode PAY_PER_REQUEST
//	aws dynamodb wait table-exists --table-name sessions
//	aws dynamodb update-time-to-live --table-name sessions \
//	  --time-to-live-specification Enabled=true,AttributeName=expires
func CreateTable(ctx context.Context, client CreateTableAPIClient, optFns ...func(*Options)) error {
	o := resolveOptions(0, optFns)
	fail := func(what string, err error) error {
		return fmt.Errorf("dynamostore: create table %q: %s: %w", o.TableName, what, err)
	}
	// Before any request, as New would refuse them.
	if err := checkOptions(o); err != nil {
		return fail("the options", err)
	}

	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(o.TableName),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(o.KeyAttribute), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(o.OwnerAttribute), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(o.KeyAttribute), KeyType: types.KeyTypeHash},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String(o.OwnerIndex),
			KeySchema:  ownerIndexKey(o),
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(o.TableName)})
		if err != nil {
			return fail("describe existing table", err)
		}
		if err := sessionitem.CheckKeySchema(desc.Table, o.KeyAttribute); err != nil {
			return fmt.Errorf("dynamostore: create table %q: it exists with another key schema: %w", o.TableName, err)
		}
		if err := addOwnerIndex(ctx, client, o, desc.Table); err != nil {
			return err
		}
	case err != nil:
		return fail("create", err)
	}

	// The SDK's waiter polls every 20 s by default; a new on-demand table is
	// usually ACTIVE within seconds.
	waiter := dynamodb.NewTableExistsWaiter(client, func(w *dynamodb.TableExistsWaiterOptions) {
		w.MinDelay = 200 * time.Millisecond
		w.MaxDelay = 5 * time.Second
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(o.TableName)}, 5*time.Minute); err != nil {
		return fail("wait until active", err)
	}
	if err := waitOwnerIndex(ctx, client, o); err != nil {
		return fail(fmt.Sprintf("wait until index %q is active", o.OwnerIndex), err)
	}
	return enableTTL(ctx, client, o)
}

func ownerIndexKey(o Options) []types.KeySchemaElement {
	return []types.KeySchemaElement{{AttributeName: aws.String(o.OwnerAttribute), KeyType: types.KeyTypeHash}}
}

// addOwnerIndex adds the owner index to the existing table t unless it has
// it.
func addOwnerIndex(ctx context.Context, client CreateTableAPIClient, o Options, t *types.TableDescription) error {
	idx, err := sessionitem.OwnerIndex(t, o.OwnerIndex, o.OwnerAttribute)
	if err != nil || idx != nil {
		if err != nil {
			err = fmt.Errorf("dynamostore: create table %q: %w", o.TableName, err)
		}
		return err
	}
	create := &types.CreateGlobalSecondaryIndexAction{
		IndexName:  aws.String(o.OwnerIndex),
		KeySchema:  ownerIndexKey(o),
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
	}
	if t.BillingModeSummary == nil || t.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		// A provisioned table's index needs capacity of its own: the
		// index takes a write for every session that gains, changes or
		// loses an owner, so give it the table's.
		if pt := t.ProvisionedThroughput; pt != nil {
			create.ProvisionedThroughput = &types.ProvisionedThroughput{
				ReadCapacityUnits:  pt.ReadCapacityUnits,
				WriteCapacityUnits: pt.WriteCapacityUnits,
			}
		}
	}
	o.Logger.Info("dynamostore: adding the owner index to the table; waiting until DynamoDB has filled it",
		"table", o.TableName, "index", o.OwnerIndex)
	_, err = client.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName: aws.String(o.TableName),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(o.OwnerAttribute), AttributeType: types.ScalarAttributeTypeS},
		},
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: create}},
	})
	if err != nil {
		return fmt.Errorf("dynamostore: create table %q: add index %q on %q: %w", o.TableName, o.OwnerIndex, o.OwnerAttribute, err)
	}
	return nil
}

// waitOwnerIndex polls the table until its owner index is ACTIVE.
func waitOwnerIndex(ctx context.Context, client CreateTableAPIClient, o Options) error {
	pause := backoff{next: indexPollBackoff}
	for {
		desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(o.TableName)})
		if err != nil {
			return err
		}
		idx, err := sessionitem.OwnerIndex(desc.Table, o.OwnerIndex, o.OwnerAttribute)
		switch {
		case err != nil:
			return err
		case idx == nil:
			return fmt.Errorf("the table has no index %q", o.OwnerIndex)
		case idx.IndexStatus == types.IndexStatusActive:
			return nil
		}
		if err := pause.wait(ctx); err != nil {
			return err
		}
	}
}

// enableTTL makes o.ExpiryAttribute the table's TTL attribute, unless it
// already is.
func enableTTL(ctx context.Context, client CreateTableAPIClient, o Options) error {
	desc, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(o.TableName)})
	if isUnknownOperation(err) {
		o.Logger.Warn("dynamostore: this DynamoDB endpoint has no TTL API; TTL is not enabled, so only the sweeper deletes expired sessions",
			"table", o.TableName)
		return nil
	}
	if err != nil {
		return fmt.Errorf("dynamostore: create table %q: describe TTL: %w", o.TableName, err)
	}
	if attr, on := sessionitem.TTL(desc.TimeToLiveDescription); on {
		if attr == o.ExpiryAttribute {
			return nil
		}
		return fmt.Errorf("dynamostore: create table %q: TTL is already enabled on attribute %q, not %q; DynamoDB allows one TTL attribute per table",
			o.TableName, attr, o.ExpiryAttribute)
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(o.TableName),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(o.ExpiryAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	if isUnknownOperation(err) {
		o.Logger.Warn("dynamostore: this DynamoDB endpoint has no TTL API; TTL is not enabled, so only the sweeper deletes expired sessions",
			"table", o.TableName)
		return nil
	}
	if err != nil {
		return fmt.Errorf("dynamostore: create table %q: enable TTL on %q: %w", o.TableName, o.ExpiryAttribute, err)
	}
	return nil
}
