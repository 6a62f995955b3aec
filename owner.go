package dynamostore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// maxBatchGet is the most keys one BatchGetItem request may ask for.
const maxBatchGet = 100

// OwnerTokens returns the tokens (as the store keeps them, without
// KeyPrefix: the tokens it was given, or under Options.HashTokens their
// hashes, and the clear tokens of the sessions Options.ClearTokenFallback
// has not moved yet) of the owner's unexpired sessions under this store's
// KeyPrefix, those Find serves; a store without Encryption, which cannot
// open a sealed session, lists one by its shape and expiry. The index
// holds keys only, so telling expired from live costs a read per session
// (BatchGetItem).
//
// The owner index is a global secondary index, which DynamoDB updates
// eventually, usually within a second, and which cannot be read with
// ConsistentRead: a session committed a moment ago may be missing, and one
// deleted a moment ago is checked and left out. The reads of the sessions
// themselves follow ConsistentRead. The tokens are sorted.
//
// The store's Client must also have the Query and BatchGetItem methods, as
// *dynamodb.Client and DAX's client do; OwnerTokens returns an error
// wrapping ErrClientMethod when it lacks them, and one wrapping
// ErrIndexNotFound when the table has no OwnerIndex.
func (s *DynamoStore) OwnerTokens(ctx context.Context, owner string) (tokens []string, err error) {
	op := opOwnerTokens.String()
	defer func(start time.Time) { s.metrics.done(ctx, opOwnerTokens, start, err, true) }(time.Now())
	if s.batchGet == nil {
		return nil, s.opError(op, fmt.Errorf("%w: the Client, a %T, has no BatchGetItem method; use a *dynamodb.Client or a wrapper that has it", ErrClientMethod, s.client))
	}
	var keys []string
	if err := s.ownerKeys(ctx, opOwnerTokens, owner, func(key string) { keys = append(keys, key) }); err != nil {
		return nil, err
	}
	// What sessionitem.Classify needs, the data included: a read is billed
	// for the whole item whatever it returns.
	projection := "#k, #o, #e, #m, #r, #d0, #d1, #d2, #d3"
	names := map[string]string{"#k": s.keyAttr, "#o": s.ownerAttr, "#e": s.expiryAttr, "#m": s.expiryMsAttr, "#r": sessionitem.RevokedAttribute}
	for i, attr := range s.dataAttrs {
		names["#d"+strconv.Itoa(i)] = attr
	}
	now := s.now()
	tokens = []string{}
	err = s.readItems(ctx, opOwnerTokens, keys, &projection, names, func(item map[string]types.AttributeValue) {
		if key, _, _, ok := s.liveOwned(opOwnerTokens, item, owner, now); ok {
			tokens = append(tokens, key[len(s.prefix):])
		}
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(tokens)
	return tokens, nil
}

// readItems reads the items with keys, maxBatchGet at a time with
// BatchGetItem, with projection and names when projection is not nil,
// asking again for what DynamoDB leaves unread, and calls fn with each.
func (s *DynamoStore) readItems(ctx context.Context, operation operation, keys []string, projection *string, names map[string]string, fn func(item map[string]types.AttributeValue)) error {
	op := operation.String()
	for chunk := range slices.Chunk(keys, maxBatchGet) {
		request := make([]map[string]types.AttributeValue, len(chunk))
		for i, key := range chunk {
			request[i] = map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: key}}
		}
		pending := map[string]types.KeysAndAttributes{s.tableName: {
			Keys:                     request,
			ProjectionExpression:     projection,
			ExpressionAttributeNames: names,
			ConsistentRead:           s.consistent,
		}}
		pause := backoff{next: unprocessedBackoff}
		for try := 0; len(pending) > 0; try++ {
			if try > 0 {
				// DynamoDB returns what it could not read for lack of
				// capacity; ask again after a pause, as it advises.
				if try > maxUnprocessedRetries {
					return s.opError(op, fmt.Errorf("BatchGetItem left keys unread after %d tries", try))
				}
				if err := pause.wait(ctx); err != nil {
					return s.opError(op, err)
				}
			}
			out, err := s.batchGet.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
				RequestItems:           pending,
				ReturnConsumedCapacity: s.metrics.capacityRequest(ctx),
			})
			if err != nil {
				return s.opError(op, err)
			}
			for i := range out.ConsumedCapacity {
				s.metrics.consumed(ctx, operation, kindRead, &out.ConsumedCapacity[i])
			}
			for _, item := range out.Responses[s.tableName] {
				fn(item)
			}
			pending = out.UnprocessedKeys
		}
	}
	return nil
}

// liveOwned returns the key, the data and the expiry (Unix milliseconds)
// of item if it still belongs to owner, is a session Find would serve (it
// opens, under RequireEncryption as well), and has not expired at now. A
// store without Encryption, such as the command-line tool's, cannot open
// a sealed session: it counts one by its shape and expiry, as the tool's
// stats does, with nil data.
func (s *DynamoStore) liveOwned(op operation, item map[string]types.AttributeValue, owner string, now time.Time) (key string, data []byte, expiry int64, ok bool) {
	if sessionitem.Classify(item, s.names) != sessionitem.Session {
		return "", nil, 0, false // a revocation, or not this store's
	}
	if o, ok := item[s.ownerAttr].(*types.AttributeValueMemberS); !ok || o.Value != owner {
		return "", nil, 0, false // it changed hands since the index listed it
	}
	_, format, err := sessionitem.Data(item, s.dataAttr)
	switch {
	case err != nil:
	case format.Sealed && s.aead == nil:
		expiry, err = sessionitem.ExpiryMillis(item, s.expiryAttr)
	default:
		data, expiry, err = s.decode(item)
	}
	if err != nil {
		s.logUnreadable(op.String(), err)
		return "", nil, 0, false
	}
	if sessionitem.Expired(expiry, now) {
		return "", nil, 0, false
	}
	return item[s.keyAttr].(*types.AttributeValueMemberS).Value, data, expiry, true
}

// DeleteOwner deletes every session of the owner under this store's KeyPrefix, expired
// ones still in the table included, and returns how many items it deleted.
//
// It queries OwnerIndex page by page and deletes each session as Delete
// does, with a revocation (see Options.RevocationPeriod) put in its place
// conditional on its owner still being owner, 8 at a time, so a session
// that changed hands in the meantime is kept; a request in flight cannot
// commit a deleted one back. It costs one read unit
// per 4 KB of keys the index returns (eventually consistent: 0.5 units) and
// a write unit per session deleted; it never scans the table. It never
// deletes the sweeper lease. Under Options.ClearTokenFallback a session
// listed by its clear key and moved under its hash before its revocation
// landed is revoked under the hash instead, at one more write (as are
// those of DeleteOwnerSession, DeleteOwnerExcept and LimitOwner).
//
// KeyPrefix is the fence (see Options.KeyPrefix): a store never deletes
// another prefix's sessions, nor anything in the table that is not a
// session.
//
// The owner index is a global secondary index, which DynamoDB updates
// eventually, usually within a second: a session committed a moment before
// DeleteOwner may not be listed yet, and survives. Where that matters,
// renew the current session's token (scs's RenewToken) so the session the
// caller keeps is a new one, and call DeleteOwner again a few seconds
// later.
//
// The store's Client must also have the Query method, as *dynamodb.Client
// and DAX's client do; DeleteOwner returns an error wrapping ErrClientMethod
// when it lacks it, and one wrapping ErrIndexNotFound when the table has no
// OwnerIndex. On error it stops early and returns the
// count deleted so far.
func (s *DynamoStore) DeleteOwner(ctx context.Context, owner string) (deleted int, err error) {
	return s.DeleteOwnerFunc(ctx, owner, nil)
}

// DeleteOwnerFunc is DeleteOwner that calls fn around each delete, with
// the session's token as the store keeps it (as OwnerTokens lists it) and
// del, which deletes it; fn must call del, and may return an error to stop
// DeleteOwner. It is called from several goroutines at once. A nil fn
// calls del alone. It makes DynamoStore an OwnerStore, through which a
// CachedStore drops its copies of the sessions it deletes.
func (s *DynamoStore) DeleteOwnerFunc(ctx context.Context, owner string, fn func(ctx context.Context, token string, del func(context.Context) error) error) (deleted int, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opDeleteOwner, start, err, true) }(time.Now())
	if fn == nil {
		fn = func(ctx context.Context, _ string, del func(context.Context) error) error { return del(ctx) }
	}
	// The owner's, and a session: never anything else the index lists.
	cond, names, values := sessionitem.SessionCondition(s.names)
	cond = "#o = :o AND " + cond
	names["#o"] = s.ownerAttr
	values[":o"] = &types.AttributeValueMemberS{Value: owner}
	var count atomic.Int64
	// The first failed delete cancels the Query and the other deletes.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sweepWorkers)
	err = s.ownerKeys(gctx, opDeleteOwner, owner, func(key string) {
		g.Go(func() error {
			return s.revokeListed(gctx, opDeleteOwner, key, "", cond, names, values, fn, &count)
		})
	})
	// A failed delete is the cause of a Query that then failed.
	if werr := g.Wait(); werr != nil {
		err = werr
	}
	return int(count.Load()), err
}

// ownerKeys calls fn with the key of every item that OwnerIndex lists for
// owner under this store's KeyPrefix's fence (sessionitem.Token).
func (s *DynamoStore) ownerKeys(ctx context.Context, operation operation, owner string, fn func(key string)) error {
	op := operation.String()
	if s.query == nil {
		return s.opError(op, fmt.Errorf("%w: the Client, a %T, has no Query method; use a *dynamodb.Client or a wrapper that has it", ErrClientMethod, s.client))
	}
	if !validOwner(owner) {
		return nil // Commit never stores it
	}
	cond := "#o = :o"
	input := &dynamodb.QueryInput{
		TableName:                 s.table,
		IndexName:                 s.ownerIndex,
		KeyConditionExpression:    &cond,
		ExpressionAttributeNames:  map[string]string{"#o": s.ownerAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":o": &types.AttributeValueMemberS{Value: owner}},
		ReturnConsumedCapacity:    s.metrics.capacityRequest(ctx),
	}
	if s.prefix != "" {
		// Saves transfer only: a Query is billed for what it reads.
		filter := "begins_with(#k, :prefix)"
		input.FilterExpression = &filter
		input.ExpressionAttributeNames["#k"] = s.keyAttr
		input.ExpressionAttributeValues[":prefix"] = &types.AttributeValueMemberS{Value: s.prefix}
	}
	p := dynamodb.NewQueryPaginator(s.query, input)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.indexError(op, err)
		}
		s.metrics.consumed(ctx, operation, kindRead, page.ConsumedCapacity)
		for _, item := range page.Items {
			key, ok := item[s.keyAttr].(*types.AttributeValueMemberS)
			if !ok {
				continue
			}
			if _, ok := sessionitem.Token(key.Value, s.prefix); ok {
				fn(key.Value)
			}
		}
	}
	return nil
}

// revokeListed replaces the item under key, which the owner index listed,
// with a revocation, under cond (that it is still the owner's session),
// calling fn around the write, and adds one to count when it did.
//
// Under Options.ClearTokenFallback the key may be a clear token's, whose
// session a Find moved under the token's hash after the index listed it:
// the move revoked the clear key, and the condition fails there. The
// session's hashed key is then revoked under the same condition (the move
// keeps the owner and the time of the last write), at one more write for
// each listed key whose condition failed; a listed key that was a hashed
// one already names, hashed again, no item, and the write stores nothing.
// The hashed key is left alone when its session's ID is keepID (not ""):
// the session DeleteOwnerExcept keeps, listed under its clear key.
func (s *DynamoStore) revokeListed(ctx context.Context, operation operation, key, keepID, cond string, names map[string]string, values map[string]types.AttributeValue, fn func(ctx context.Context, token string, del func(context.Context) error) error, count *atomic.Int64) error {
	revoke := func(key string) (bool, error) {
		var ok bool
		err := fn(ctx, key[len(s.prefix):], func(ctx context.Context) error {
			var err error
			ok, err = s.putIf(ctx, operation, &dynamodb.PutItemInput{
				TableName:                 s.table,
				Item:                      s.revocation(key),
				ConditionExpression:       &cond,
				ExpressionAttributeNames:  names,
				ExpressionAttributeValues: values,
			})
			return err
		})
		if ok {
			count.Add(1)
		}
		return ok, err
	}
	ok, err := revoke(key)
	if err != nil || ok || !s.opts.ClearTokenFallback {
		return err
	}
	hashed, ok := s.hashedKeyOf(key)
	if !ok || (keepID != "" && sessionitem.SessionID(hashed) == keepID) {
		return nil
	}
	_, err = revoke(hashed)
	return err
}
