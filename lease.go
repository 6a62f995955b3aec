package dynamostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// The sweeper lease is the item keyed KeyPrefix + sessionitem.LeaseToken. It has no data or expiry attribute, so neither
// TTL nor a sweep deletes it; it holds its holder and its end in Unix
// milliseconds, since a CleanupInterval may be shorter than a second.
const (
	// minLease is the shortest term of the sweeper lease: a lease of a
	// short CleanupInterval lasts this long, so that a sweep on a slow
	// machine is not stopped for want of a renewal in time. The holder
	// takes it again at each tick, and gives it up when it stops.
	minLease = 10 * time.Second

	leaseOwnerAttr = sessionitem.LeaseOwnerAttribute
	leaseUntilAttr = sessionitem.LeaseUntilAttribute
)

// newLeaseHolder returns a random name for this store on the lease.
func newLeaseHolder() string {
	var b [12]byte
	rand.Read(b[:]) // never fails, per crypto/rand
	return hex.EncodeToString(b[:])
}

// acquireLease takes or renews the sweeper lease until now+leaseFor and
// reports whether this store holds it.
func (s *DynamoStore) acquireLease(ctx context.Context) (bool, error) {
	now := s.now()
	cond := "attribute_not_exists(#k) OR #u <= :now OR #o = :me"
	out, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		// The lease is the background sweep's: counted as delete_expired.
		ReturnConsumedCapacity: s.metrics.capacityRequest(ctx),
		TableName:              s.table,
		Item: map[string]types.AttributeValue{
			s.keyAttr:      &types.AttributeValueMemberS{Value: s.leaseKey},
			leaseOwnerAttr: &types.AttributeValueMemberS{Value: s.leaseHolder},
			leaseUntilAttr: &types.AttributeValueMemberN{Value: strconv.FormatInt(now.Add(s.leaseFor).UnixMilli(), 10)},
		},
		ConditionExpression:      &cond,
		ExpressionAttributeNames: map[string]string{"#k": s.keyAttr, "#u": leaseUntilAttr, "#o": leaseOwnerAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
			":me":  &types.AttributeValueMemberS{Value: s.leaseHolder},
		},
	})
	switch {
	case isConditionFailed(err):
		return false, nil
	case err != nil:
		return false, s.opError("take sweeper lease", err)
	}
	s.metrics.consumed(ctx, opDeleteExpired, kindWrite, out.ConsumedCapacity)
	return true, nil
}

// releaseLease gives the lease up, if this store holds it, so that another
// store sweeps at its next tick rather than after the lease lapses.
func (s *DynamoStore) releaseLease(ctx context.Context) error {
	cond := "#o = :me"
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 s.table,
		Key:                       map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: s.leaseKey}},
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  map[string]string{"#o": leaseOwnerAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":me": &types.AttributeValueMemberS{Value: s.leaseHolder}},
	})
	if err != nil && !isConditionFailed(err) {
		return s.opError("release sweeper lease", err)
	}
	return nil
}

// errLeaseLost is why a sweep stops when its store can no longer tell
// that it holds the sweeper lease.
var errLeaseLost = errors.New("the sweeper lease could not be renewed before it lapsed, so another store may sweep; this one stopped")

// holdLease renews the sweeper lease, taken at took, every third of
// its term while the sweep whose context is ctx runs, and stops the
// sweep with cancel before the lease could lapse: when a renewal fails, or
// none has succeeded a quarter of its term before the last one taken
// ends (the margin allows for the sweep's requests to stop, and for
// clocks a little apart). So the Scans of two stores never overlap,
// however long a sweep takes.
func (s *DynamoStore) holdLease(ctx context.Context, cancel context.CancelCauseFunc, took time.Time) {
	margin := s.leaseFor / 4
	until := took.Add(s.leaseFor - margin)
	renew := time.NewTicker(s.leaseFor / 3)
	defer renew.Stop()
	for {
		lapse := time.NewTimer(time.Until(until))
		select {
		case <-ctx.Done():
			lapse.Stop()
			return
		case <-lapse.C:
			cancel(errLeaseLost)
			return
		case <-renew.C:
			lapse.Stop()
		}
		start := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, until)
		ok, err := s.acquireLease(rctx)
		rcancel()
		if !ok {
			if err == nil {
				err = errLeaseLost // another store holds it
			} else {
				err = fmt.Errorf("%w: %w", errLeaseLost, err)
			}
			cancel(err)
			return
		}
		until = start.Add(s.leaseFor - margin)
	}
}
