package dynamostore

import (
	"context"
	"errors"
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
// left alone. It changes nothing but the sealing: each session keeps its
// data, its expiry, its owner, the time of its last write and its mark of
// a hashed token (the key_hashed attribute) as stored, whatever this
// store's Owner and HashTokens options say. Items it cannot read are
// skipped, as Find skips them. It
// costs the Scan's read units for every item in the table and one write of
// each live session. It returns an error, before any request, when the
// store has no Encryption. On error it stops early and returns the count
// rewritten so far.
func (s *DynamoStore) Reseal(ctx context.Context) (resealed int, err error) {
	op := opReseal.String()
	defer func(start time.Time) { s.metrics.done(ctx, opReseal, start, err, true) }(time.Now())
	if s.aead == nil {
		return 0, s.opError(op, errors.New("the store has no Options.Encryption"))
	}
	var count atomic.Int64
	// The first failed write cancels the Scan and the other writes.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepWorkers)
	scanErr := s.liveSessions(gctx, opReseal, s.now(), func(key string, item map[string]types.AttributeValue, data []byte, expiry int64) {
		g.Go(func() error {
			ok, err := s.reseal(gctx, key, item, data, expiry)
			if ok {
				count.Add(1)
			}
			return err
		})
	})
	// A failed write is the cause of a Scan that then failed.
	if err = g.Wait(); err == nil {
		err = scanErr
	}
	if err == nil && ctx.Err() != nil {
		err = s.opError(op, ctx.Err())
	}
	return int(count.Load()), err
}

// reseal writes the session read as item again, sealed now, if the item
// is still as it was read, and reports whether it did.
func (s *DynamoStore) reseal(ctx context.Context, key string, item map[string]types.AttributeValue, data []byte, expiry int64) (bool, error) {
	_, format, err := sessionitem.Data(item, s.dataAttr)
	if err != nil {
		return false, nil // decode read it a moment ago
	}
	// The condition compares the stored data and expiry with what was
	// read: a Commit since then changed one of them, since a sealed
	// Commit's ciphertext is new every time.
	// Each attribute the condition names is compared with what was read,
	// or, if the item had none, required to be missing still; an
	// attribute the item lacked must not be sent as a value.
	names := map[string]string{"#d": format.Attribute(s.dataAttr), "#e": s.expiryAttr, "#m": s.expiryMsAttr, "#o": s.ownerAttr}
	values := map[string]types.AttributeValue{":d": item[names["#d"]]}
	cond := "#d = :d"
	for _, a := range []struct{ name, value, attr string }{{"#e", ":e", s.expiryAttr}, {"#m", ":m", s.expiryMsAttr}, {"#o", ":o", s.ownerAttr}} {
		if v, ok := item[a.attr]; ok {
			cond += " AND " + a.name + " = " + a.value
			values[a.value] = v
		} else {
			cond += " AND attribute_not_exists(" + a.name + ")"
		}
	}
	// The owner stays as stored, whatever this store's Owner option, and
	// so does the last write: resealing is no use of the session, so its
	// place in its owner's list stays.
	keep := s.storedOwner(item)
	err = s.commit(ctx, opReseal, key, data, time.UnixMilli(expiry), &dynamodb.PutItemInput{
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}, keep)
	switch {
	case isConditionFailed(err):
		return false, nil
	case errors.Is(err, ErrTooLarge):
		// Sealing makes it larger than an item may be: it stays as it
		// is, and Reseal goes on with the rest.
		s.logger.Warn("dynamostore: reseal: a session too large to seal is left as it is", "table", s.tableName, "error", err)
		return false, nil
	}
	return err == nil, err
}
