package dynamostore

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// sweepWorkers is how many conditional writes a sweep (per Scan segment),
// DeleteOwner and Reseal keep in flight. The sweep deletes with DeleteItem,
// not BatchWriteItem, because only DeleteItem takes the condition that
// keeps a re-committed session alive.
const sweepWorkers = 8

// The store's own pauses, where the SDK's retryer does not apply: keys
// that BatchGetItem leaves unprocessed for lack of capacity (asked for
// again at most maxUnprocessedRetries times, as DynamoDB advises), and
// polls for an index to become ACTIVE. Each is a backoff from its first
// pause, doubling up to maxBackoff.
const (
	unprocessedBackoff    = 50 * time.Millisecond
	indexPollBackoff      = 200 * time.Millisecond
	maxBackoff            = 5 * time.Second
	maxUnprocessedRetries = 10
)

// backoff is the store's one policy for the pauses of its own retries and
// polls: the first is next, and each doubles, up to maxBackoff.
type backoff struct {
	next time.Duration
}

// wait pauses for the next pause, or until ctx ends and returns its error.
func (b *backoff) wait(ctx context.Context) error {
	d := b.next
	b.next = min(2*b.next, maxBackoff)
	return sleepCtx(ctx, d)
}

// deleteIf sends input, a conditional DeleteItem for op, and reports whether the condition held and the item went.
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
	switch {
	case err == nil:
		s.metrics.consumed(ctx, operation, kindWrite, consumed)
		return true, nil
	case isConditionFailed(err):
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
