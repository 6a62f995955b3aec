package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// CreateTable creates the session table described by the options (the same
// option functions New takes): on-demand billing, a partition key of type S
// named KeyAttribute and no sort key. It waits until the table is ACTIVE and
// then enables TTL on ExpiryAttribute, so DynamoDB deletes expired sessions
// by itself. It returns nil when a table with that key schema already exists
// and an error when one exists with another key schema.
//
// Where the endpoint has no TTL API (some DynamoDB emulators), CreateTable
// still creates the table, logs a warning through Options.Logger and returns
// nil.
func CreateTable(ctx context.Context, client *dynamodb.Client, optFns ...func(*Options)) error {
	o := resolveOptions(0, optFns)
	fail := func(what string, err error) error {
		return fmt.Errorf("dynamostore: create table %q: %s: %w", o.TableName, what, err)
	}

	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(o.TableName),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(o.KeyAttribute), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(o.KeyAttribute), KeyType: types.KeyTypeHash},
		},
	})
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(o.TableName)})
		if err != nil {
			return fail("describe existing table", err)
		}
		if err := checkKeySchema(desc.Table, o.KeyAttribute); err != nil {
			return fmt.Errorf("dynamostore: create table %q: a table of that name exists with another key schema: %w", o.TableName, err)
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
	return enableTTL(ctx, client, o)
}

// checkKeySchema returns an error unless the table's key is a single
// partition key of type S named keyAttr.
func checkKeySchema(t *types.TableDescription, keyAttr string) error {
	if t == nil || len(t.KeySchema) != 1 || t.KeySchema[0].KeyType != types.KeyTypeHash ||
		aws.ToString(t.KeySchema[0].AttributeName) != keyAttr {
		return fmt.Errorf("want a single partition key %q of type S and no sort key", keyAttr)
	}
	for _, def := range t.AttributeDefinitions {
		if aws.ToString(def.AttributeName) == keyAttr && def.AttributeType != types.ScalarAttributeTypeS {
			return fmt.Errorf("partition key %q is of type %s, want S", keyAttr, def.AttributeType)
		}
	}
	return nil
}

// enableTTL makes o.ExpiryAttribute the table's TTL attribute, unless it
// already is.
func enableTTL(ctx context.Context, client *dynamodb.Client, o Options) error {
	desc, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(o.TableName)})
	if isUnknownOperation(err) {
		o.Logger.Warn("dynamostore: this DynamoDB endpoint has no TTL API; TTL is not enabled, so only the sweeper deletes expired sessions",
			"table", o.TableName)
		return nil
	}
	if err != nil {
		return fmt.Errorf("dynamostore: create table %q: describe TTL: %w", o.TableName, err)
	}
	if d := desc.TimeToLiveDescription; d != nil {
		attr := aws.ToString(d.AttributeName)
		switch d.TimeToLiveStatus {
		case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
			if attr == o.ExpiryAttribute {
				return nil
			}
			return fmt.Errorf("dynamostore: create table %q: TTL is already enabled on attribute %q, not %q; DynamoDB allows one TTL attribute per table",
				o.TableName, attr, o.ExpiryAttribute)
		}
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

func isUnknownOperation(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "UnknownOperationException"
}
