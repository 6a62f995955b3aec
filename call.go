package dynamostore

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const (
	// sweepWorkers is how many DeleteItem requests a sweep keeps in flight
	// per Scan segment.
	// DeleteItem, not BatchWriteItem, because only DeleteItem takes the
	// condition that keeps a re-committed session alive.
	sweepWorkers = 8

	// What BatchGetItem leaves unprocessed for lack of capacity, which the
	// SDK does not retry, is asked for again after unprocessedBackoff,
	// doubling up to maxUnprocessedBackoff, at most maxUnprocessedRetries
	// times, as DynamoDB advises.
	unprocessedBackoff    = 50 * time.Millisecond
	maxUnprocessedBackoff = 5 * time.Second
	maxUnprocessedRetries = 10
)

// deleteIf sends input, a conditional DeleteItem for op, retrying it while
// it is throttled, and reports whether the condition held and the item went.
func (s *DynamoStore) deleteIf(ctx context.Context, operation operation, input *dynamodb.DeleteItemInput) (bool, error) {
	input.ReturnConsumedCapacity = s.metrics.capacityRequest(ctx)
	return s.writeIf(ctx, operation, func() (*types.ConsumedCapacity, error) {
		out, err := s.client.DeleteItem(ctx, input)
		if err != nil {
			return nil, err
		}
		return out.ConsumedCapacity, nil
	})
}

// putIf is deleteIf for a conditional PutItem.
func (s *DynamoStore) putIf(ctx context.Context, operation operation, input *dynamodb.PutItemInput) (bool, error) {
	input.ReturnConsumedCapacity = s.metrics.capacityRequest(ctx)
	return s.writeIf(ctx, operation, func() (*types.ConsumedCapacity, error) {
		out, err := s.client.PutItem(ctx, input)
		if err != nil {
			return nil, err
		}
		return out.ConsumedCapacity, nil
	})
}

// writeIf calls send, a conditional write for op, and reports whether the
// condition held and the write went. It retries nothing itself: the
// client's retryer is the one retry policy (see DeleteExpired).
func (s *DynamoStore) writeIf(ctx context.Context, operation operation, send func() (*types.ConsumedCapacity, error)) (bool, error) {
	consumed, err := send()
	var condFailed *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		s.metrics.consumed(ctx, operation, kindWrite, consumed)
		return true, nil
	case errors.As(err, &condFailed):
		return false, nil
	}
	return false, s.opError(operation.String(), err)
}

// sleepCtx waits for d, or until ctx ends and returns its error.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// batchGetter is the method OwnerTokens needs beyond Client.
type batchGetter interface {
	BatchGetItem(ctx context.Context, params *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// ttlDescriber is the one operation beyond Client's that the sweeper uses,
// when its client has it: *dynamodb.Client does, a DAX client does not.
type ttlDescriber interface {
	DescribeTimeToLive(ctx context.Context, params *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}
