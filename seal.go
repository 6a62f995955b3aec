package dynamostore

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// Reseal commits every live session under this store's KeyPrefix again,
// with its data and expiry unchanged, sealed with Options.Encryption as it
// now is (for tink-go, under the keyset's primary key), and returns how many
// it rewrote. Use it after adding a new primary key, when the longest
// session lifetime is too long to wait for before the old key is retired
// (scs commits only sessions that changed, so a session that is only read
// keeps its old key), and after turning Encryption on, before
// RequireEncryption.
//
// It reads the whole table with Scan, as All does, and writes each live
// session with a PutItem conditional on the item being as it was read, so
// a session that the application committed or deleted in the meantime is
// left alone. Items it cannot read are skipped, as Find skips them. It
// costs the Scan's read units for every item in the table and one write of
// each live session. It returns an error, before any request, when the
// store has no Encryption. On error it stops early and returns the count
// rewritten so far.
func (s *DynamoStore) Reseal(ctx context.Context) (resealed int, err error) {
	const op = "reseal"
	defer func(start time.Time) { s.metrics.done(ctx, opReseal, start, err, true) }(time.Now())
	if s.aead == nil {
		return 0, s.opError(op, errors.New("the store has no Options.Encryption"))
	}
	var count atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepWorkers)
	p := dynamodb.NewScanPaginator(s.client, &dynamodb.ScanInput{
		TableName:              s.table,
		ConsistentRead:         s.consistent,
		ReturnConsumedCapacity: s.metrics.capacityRequest(ctx),
	})
	now := s.now()
	for p.HasMorePages() && gctx.Err() == nil {
		page, err := p.NextPage(gctx)
		if err != nil {
			g.Wait()
			return int(count.Load()), s.opError(op, err)
		}
		s.metrics.consumed(ctx, opReseal, kindRead, page.ConsumedCapacity)
		for _, item := range page.Items {
			key, ok := item[s.keyAttr].(*types.AttributeValueMemberS)
			if !ok || !strings.HasPrefix(key.Value, s.prefix) || key.Value == s.leaseKey {
				continue
			}
			data, expiry, err := s.decode(item)
			if err != nil {
				s.logUnreadable(op, err)
				continue
			}
			if sessionitem.Expired(expiry, now) {
				continue
			}
			g.Go(func() error {
				ok, err := s.reseal(gctx, key.Value, item, data, expiry)
				if ok {
					count.Add(1)
				}
				return err
			})
		}
	}
	err = g.Wait()
	if err == nil && ctx.Err() != nil {
		err = s.opError(op, ctx.Err())
	}
	return int(count.Load()), err
}

// reseal writes the session read as item again, sealed now, if the item
// is still as it was read, and reports whether it did.
func (s *DynamoStore) reseal(ctx context.Context, key string, item map[string]types.AttributeValue, data []byte, expiry int64) (bool, error) {
	_, stored, err := sessionitem.Data(item, s.dataAttr)
	if err != nil {
		return false, nil // decode read it a moment ago
	}
	// The condition compares the stored data and expiry with what was
	// read: a Commit since then changed one of them, since a sealed
	// Commit's ciphertext is new every time.
	names := map[string]string{"#d": stored.Attribute(s.dataAttr), "#e": s.expiryAttr, "#m": s.expiryMsAttr}
	values := map[string]types.AttributeValue{":d": item[names["#d"]], ":e": item[s.expiryAttr]}
	cond := "#d = :d AND #e = :e AND attribute_not_exists(#m)"
	if ms, ok := item[s.expiryMsAttr]; ok {
		cond = "#d = :d AND #e = :e AND #m = :m"
		values[":m"] = ms
	}
	err = s.commit(ctx, opReseal, key, data, time.UnixMilli(expiry), &dynamodb.PutItemInput{
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	var condFailed *types.ConditionalCheckFailedException
	if errors.As(err, &condFailed) {
		return false, nil
	}
	return err == nil, err
}
