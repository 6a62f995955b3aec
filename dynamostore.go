// Package dynamostore is a session store for github.com/alexedwards/scs/v2
// that keeps sessions in one Amazon DynamoDB table through aws-sdk-go-v2.
//
// Each session is one item: the token (behind an optional key prefix) is the
// partition key, the session data is a binary attribute holding exactly the
// bytes scs encodes (or, with Options.CompressAbove, those bytes compressed
// with zstd; with Options.Encryption, sealed by an AEAD), and the expiry is
// two number attributes: whole Unix seconds,
// rounded up, which is the table's TTL attribute, and the exact expiry in
// Unix milliseconds. A session is live until its expiry, to the millisecond.
// Find is one GetItem, Commit one PutItem and Delete one PutItem, which
// leaves a revocation so that no Commit of the token in flight or from a
// cached copy stores the session again (see Options.RevocationPeriod);
// nothing else runs on the request path. (Options.ClearTokenFallback, for
// the move to hashed tokens, adds a read to a Find that misses and a write
// to Delete while it is on.)
//
// DynamoDB's TTL deletes expired items lazily, often days late, so the store
// never trusts an item's presence: Find and All compare the expiry with the
// clock and treat an expired item as missing. A background sweeper (see
// DeleteExpired) deletes expired items where the table has no TTL; where it
// has, the sweeper stands down unless Options.SweepWithTTL says otherwise.
//
// Where to start:
//   - New returns the store, with the background sweeper; NewWithCleanupInterval
//     sets the sweeper's interval, or turns it off.
//   - NewCached puts a cache in front of it (or of any CacheableStore),
//     linearizable for each token: in-process and bounded in bytes by
//     default, or shared by several instances through a SharedCache, such
//     as package rediscache's on Redis.
//   - CreateTable makes the table, with its owner index and TTL, or adds what
//     an existing table lacks.
//   - DeleteExpired sweeps on your own schedule; DeleteOwner logs a user out
//     everywhere; OwnerSessions, CurrentSessionID, DeleteOwnerSession,
//     DeleteOwnerExcept and LimitOwner make a "your devices" page and cap a
//     user's sessions; Reseal seals every session under Options.Encryption.
//   - The command-line tool, github.com/dynamostore/dynamostore/cmd/dynamostore,
//     does the same from a shell: create-table, check, delete-expired, stats,
//     sessions and revoke.
//
// A DynamoStore is safe for concurrent use by multiple goroutines.
package dynamostore

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/time/rate"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// Client is the part of the DynamoDB API the store calls. *dynamodb.Client
// satisfies it, and so does a DAX client or any wrapper with the same method
// signatures.
type Client interface {
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, params *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, params *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// DescribeTimeToLiveAPIClient is the client method the background sweeper
// uses, when the store's Client has it, to stand down while the table's
// TTL deletes expired sessions (see Options.SweepWithTTL).
// *dynamodb.Client has it; a DAX client does not, and sweeps regardless.
//
// The other optional methods are the SDK's: DeleteOwner, OwnerTokens and
// the methods of OwnerSessionStore need dynamodb.QueryAPIClient, and
// OwnerTokens, OwnerSessions and LimitOwner also
// dynamodb.BatchGetItemAPIClient. New logs at Error when Options.Owner is
// set and the Client lacks one of them.
type DescribeTimeToLiveAPIClient interface {
	DescribeTimeToLive(ctx context.Context, params *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}

// DynamoStore is an scs session store on one DynamoDB table. Create it with
// New or NewWithCleanupInterval. It is safe for concurrent use.
type DynamoStore struct {
	itemRules // what its items hold: item.go and seal.go

	client Client
	// The client's optional methods, nil where it lacks them: see
	// DeleteOwner, OwnerTokens and Options.SweepWithTTL.
	query       dynamodb.QueryAPIClient
	batchGet    dynamodb.BatchGetItemAPIClient
	describeTTL DescribeTimeToLiveAPIClient

	opts   Options // as resolved; see Options
	logger *slog.Logger

	// Kept as the pointers every request needs, so a request allocates
	// none of them.
	table      *string
	tableName  string
	consistent *bool
	ownerIndex *string

	unreadable  rate.Sometimes // warnings of items that cannot be read
	badOwnerLog rate.Sometimes // warnings of owners DynamoDB cannot index
	metrics     *storeMetrics
	clearTokens clearTokenCounts // Options.ClearTokenFallback's: hashtokens.go

	sweeper // the background sweeper and its lease: cleanup.go and lease.go
}

var (
	_ scs.Store            = (*DynamoStore)(nil)
	_ scs.CtxStore         = (*DynamoStore)(nil)
	_ scs.IterableStore    = (*DynamoStore)(nil)
	_ scs.IterableCtxStore = (*DynamoStore)(nil)
)

// New returns a DynamoStore that uses client, with a background sweeper that
// deletes expired sessions every 5 minutes. Option functions change the
// defaults described at Options. Call StopCleanup to end the sweeper.
//
// New panics, with a message saying what to change, when client is nil or
// the options cannot work (CheckOptions returns the same error without
// panicking), as http.ServeMux does for a bad pattern: no request could
// recover from either.
func New(client Client, optFns ...func(*Options)) *DynamoStore {
	return NewWithCleanupInterval(client, 5*time.Minute, optFns...)
}

// NewWithCleanupInterval is like New with the sweeper running every interval;
// zero disables it. The option functions run after interval is set, so they
// may change it again. It panics as New does.
func NewWithCleanupInterval(client Client, interval time.Duration, optFns ...func(*Options)) *DynamoStore {
	return newDynamoStore(client, interval, hooks{}, optFns)
}

// hooks are what a test may change in a store: its clock, and how often
// its sweeper asks for the table's TTL status. Zero values take the
// defaults: time.Now and an hour.
type hooks struct {
	now        func() time.Time
	ttlRecheck time.Duration
}

// newDynamoStore is NewWithCleanupInterval with hooks.
func newDynamoStore(client Client, interval time.Duration, h hooks, optFns []func(*Options)) *DynamoStore {
	if client == nil {
		panic("dynamostore: New: the Client is nil; pass a *dynamodb.Client, such as dynamodb.NewFromConfig(cfg)")
	}
	o := resolveOptions(interval, optFns)
	if err := checkOptions(o); err != nil {
		panic("dynamostore: New: " + err.Error())
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.ttlRecheck <= 0 {
		h.ttlRecheck = time.Hour
	}
	consistent := o.ConsistentRead
	s := &DynamoStore{
		itemRules:   newItemRules(o, h.now),
		client:      client,
		opts:        o,
		logger:      o.Logger,
		table:       &o.TableName,
		tableName:   o.TableName,
		consistent:  &consistent,
		ownerIndex:  &o.OwnerIndex,
		unreadable:  rate.Sometimes{First: 10, Interval: time.Minute},
		badOwnerLog: rate.Sometimes{First: 1, Interval: 10 * time.Minute},
		metrics:     newStoreMetrics(o.MeterProvider, o.TableName),
		sweeper:     newSweeper(o, h.ttlRecheck),
	}
	s.query, _ = client.(dynamodb.QueryAPIClient)
	s.batchGet, _ = client.(dynamodb.BatchGetItemAPIClient)
	s.describeTTL, _ = client.(DescribeTimeToLiveAPIClient)
	if o.Owner != nil {
		// Owners are stored to be found: say now what will fail.
		for _, m := range []struct {
			name    string
			missing bool
		}{{"Query", s.query == nil}, {"BatchGetItem", s.batchGet == nil}} {
			if m.missing {
				s.logger.Error("dynamostore: New: Options.Owner is set, but the Client has no "+m.name+" method, so DeleteOwner, OwnerTokens, OwnerSessions and the other owner methods will fail with ErrClientMethod; use a *dynamodb.Client or a wrapper that has it",
					"table", o.TableName, "client", fmt.Sprintf("%T", client))
			}
		}
	}
	if o.CleanupInterval > 0 {
		s.startCleanup()
	}
	return s
}

// Options returns a copy of the store's options, with the defaults filled
// in. It makes DynamoStore a TableStore.
func (s *DynamoStore) Options() Options {
	return s.opts
}

// Find returns the data for a session token. If the token is not found, is
// expired, or is one DynamoDB cannot hold (empty, not valid UTF-8, or too
// long), found is false and err is nil. So it is when the item cannot be
// read (corrupt, tampered with, sealed with a key Options.Encryption does
// not have, or not sealed under RequireEncryption), which is logged at
// Warn: an error would make scs answer every request with that cookie with
// a 500 until it expired. It is one GetItem; under
// Options.ClearTokenFallback, a Find that finds no session there reads the
// clear token's key too, and moves a session it finds there. It calls
// FindCtx with context.Background().
func (s *DynamoStore) Find(token string) (b []byte, found bool, err error) {
	return s.FindCtx(context.Background(), token)
}

// FindCtx is like Find with a context for the GetItem request.
func (s *DynamoStore) FindCtx(ctx context.Context, token string) (b []byte, found bool, err error) {
	b, _, found, err = s.find(ctx, token)
	return b, found, err
}

// FindExpiryCtx is FindCtx that also returns when the session expires, to
// the millisecond, as Commit stored it. It makes DynamoStore a
// CacheableStore, so that a CachedStore never keeps a copy past it.
func (s *DynamoStore) FindExpiryCtx(ctx context.Context, token string) (b []byte, expiry time.Time, found bool, err error) {
	return s.find(ctx, token)
}

// find is FindExpiryCtx.
func (s *DynamoStore) find(ctx context.Context, token string) (data []byte, expiry time.Time, found bool, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opFind, start, err, found) }(time.Now())
	key, ok := s.key(token)
	if !ok {
		return nil, time.Time{}, false, nil
	}
	item, err := s.getItem(ctx, opFind, key, s.consistent)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	data, expiry, found = s.session(opFind, item)
	if !found && s.opts.ClearTokenFallback && !sessionitem.Revoked(item) {
		// A revocation under the hashed key is final: nothing moves over it.
		return s.findClear(ctx, token, key)
	}
	return data, expiry, found, nil
}

// getItem reads the item with key for op, strongly consistent when
// *consistent is true; a missing item is nil.
func (s *DynamoStore) getItem(ctx context.Context, op operation, key string, consistent *bool) (map[string]types.AttributeValue, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:              s.table,
		Key:                    map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: key}},
		ConsistentRead:         consistent,
		ReturnConsumedCapacity: s.metrics.capacityRequest(ctx),
	})
	if err != nil {
		return nil, s.opError(op.String(), err)
	}
	s.metrics.consumed(ctx, op, kindRead, out.ConsumedCapacity)
	return out.Item, nil
}

// session returns the data and expiry of item, read for op, when it is a
// session Find serves: not missing, no revocation, readable and
// unexpired. An item that cannot be read is logged.
func (s *DynamoStore) session(op operation, item map[string]types.AttributeValue) (data []byte, expiry time.Time, found bool) {
	if item == nil || sessionitem.Revoked(item) {
		return nil, time.Time{}, false
	}
	data, ms, err := s.decode(item)
	if err != nil {
		// No session, not an error: scs turns a Find error into a 500 for
		// every request with this cookie until it expires.
		s.logUnreadable(op.String(), err)
		return nil, time.Time{}, false
	}
	if sessionitem.Expired(ms, s.now()) {
		return nil, time.Time{}, false
	}
	return data, time.UnixMilli(ms), true
}

// Commit adds the session token and data to the store with the given expiry,
// overwriting any data and expiry it had. An expiry in the past is accepted
// and leaves the session not found. It calls CommitCtx with
// context.Background().
func (s *DynamoStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is like Commit with a context for the PutItem request. It returns
// an error wrapping ErrTooLarge, before any request, when the item would
// exceed DynamoDB's 400 KB limit, and an error when the token is empty, not
// valid UTF-8 or too long for a DynamoDB key. A Commit of a token deleted
// less than Options.RevocationPeriod ago stores nothing and returns nil.
func (s *DynamoStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	_, err := s.CommitStoredCtx(ctx, token, b, expiry)
	return err
}

// CommitStoredCtx is CommitCtx that also reports whether it stored the
// session: stored is false, and err nil, when the token was deleted less
// than Options.RevocationPeriod ago. It makes DynamoStore a CacheableStore,
// so that a CachedStore keeps no copy of a revoked session.
func (s *DynamoStore) CommitStoredCtx(ctx context.Context, token string, b []byte, expiry time.Time) (stored bool, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opCommit, start, err, true) }(time.Now())
	key, ok := s.key(token)
	if !ok {
		return false, fmt.Errorf("dynamostore: commit in table %q: token is not one or more base64url characters, as scs's are, or is longer than DynamoDB's %d-byte key limit", s.tableName, maxKeyBytes)
	}
	err = s.commit(ctx, opCommit, key, b, expiry, nil, nil)
	if isConditionFailed(err) {
		return false, nil // revoked
	}
	return err == nil, err
}

// CommitNewCtx stores the session as CommitCtx does, but only where the
// table holds neither a live session nor a revocation in force under the
// token, and reports whether it stored it. It is how a session moves in
// from another store (NewMigrating, Import): it never overwrites what a
// Commit wrote, and never brings back a session deleted less than
// Options.RevocationPeriod ago. An expired session, or an ended
// revocation, under the token is replaced. It costs what Commit costs; a
// write it refuses is billed as one it makes.
func (s *DynamoStore) CommitNewCtx(ctx context.Context, token string, b []byte, expiry time.Time) (stored bool, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opCommitNew, start, err, true) }(time.Now())
	key, ok := s.key(token)
	if !ok {
		return false, fmt.Errorf("dynamostore: commit new in table %q: token is not one or more base64url characters, as scs's are, or is longer than DynamoDB's %d-byte key limit", s.tableName, maxKeyBytes)
	}
	return s.commitNew(ctx, opCommitNew, key, b, expiry, nil)
}

// commitNew is CommitNewCtx for key, for op, with commit's keep.
func (s *DynamoStore) commitNew(ctx context.Context, operation operation, key string, b []byte, expiry time.Time, keep *storedOwner) (bool, error) {
	now := s.now()
	live, names, values := sessionitem.LiveCondition(s.names, now)
	values[":now"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)}
	cond := "(" + notRevoked + ") AND NOT (" + live + ")"
	err := s.commit(ctx, operation, key, b, expiry, &dynamodb.PutItemInput{
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}, keep)
	if isConditionFailed(err) {
		return false, nil // a live session or a revocation
	}
	return err == nil, err
}

// commit writes the session with key, data b and expiry, in one PutItem
// for op. The PutItem's condition is cond's when cond is not nil, and
// otherwise that the token is not revoked; a failed condition is returned
// as the SDK's *types.ConditionalCheckFailedException, wrapped. The owner
// and the time of the last write, and whether the item is marked as
// written under a hashed token, are keep's when keep is not nil, and
// otherwise Options.Owner's, now and Options.HashTokens.
func (s *DynamoStore) commit(ctx context.Context, operation operation, key string, b []byte, expiry time.Time, cond *dynamodb.PutItemInput, keep *storedOwner) error {
	op := operation.String()
	owner, hasOwner, invalid := s.owner(b)
	if invalid {
		s.badOwnerLog.Do(func() {
			s.logger.Warn("dynamostore: commit: session stored without an owner: Options.Owner returned one that is empty, not valid UTF-8 or over 2048 bytes, which DynamoDB cannot index",
				"table", s.tableName)
		})
	}
	var lastWrite string
	hashed := s.hashTokens
	if keep != nil {
		owner, hasOwner, lastWrite, hashed = keep.owner, keep.ok, keep.lastWrite, keep.hashed
	}
	item, err := s.encode(key, b, expiry, owner, hasOwner, lastWrite, hashed)
	if err != nil {
		return s.opError(op, err)
	}
	input := &dynamodb.PutItemInput{TableName: s.table, Item: item, ReturnConsumedCapacity: s.metrics.capacityRequest(ctx)}
	if cond != nil {
		input.ConditionExpression = cond.ConditionExpression
		input.ExpressionAttributeNames = cond.ExpressionAttributeNames
		input.ExpressionAttributeValues = cond.ExpressionAttributeValues
	} else {
		// Not revoked, or the revocation is over. The condition costs
		// nothing: a PutItem is billed by item size alone.
		input.ConditionExpression = &notRevoked
		input.ExpressionAttributeNames = revokedName
		input.ExpressionAttributeValues = map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(s.now().UnixMilli(), 10)},
		}
	}
	out, err := s.client.PutItem(ctx, input)
	if err != nil {
		return s.opError(op, err)
	}
	s.metrics.consumed(ctx, operation, kindWrite, out.ConsumedCapacity)
	return nil
}

// Delete removes the session token and its data from the store, for good:
// until Options.RevocationPeriod has passed, no Commit of the token stores
// it again. Deleting a token that does not exist revokes it all the same;
// an empty token does nothing. It calls DeleteCtx with
// context.Background().
func (s *DynamoStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// DeleteCtx is like Delete with a context for the request. The request is
// one PutItem that replaces the session's item with a revocation (see
// Options.RevocationPeriod), billed as a DeleteItem of the session would
// be: one write unit per KB of the larger of the two items. Under
// Options.ClearTokenFallback a second PutItem revokes the clear token's
// key as well, so that the logout is final for a session not yet moved
// too.
func (s *DynamoStore) DeleteCtx(ctx context.Context, token string) (err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opDelete, start, err, true) }(time.Now())
	key, ok := s.key(token)
	if !ok {
		return nil
	}
	if err := s.revoke(ctx, opDelete, key); err != nil {
		return err
	}
	if s.opts.ClearTokenFallback {
		// The session may still be under its clear token, which Find
		// would otherwise move in again.
		clear, _ := s.clearKey(token)
		return s.revoke(ctx, opDelete, clear)
	}
	return nil
}

// revoke puts a revocation in the place of the item with key, for op.
func (s *DynamoStore) revoke(ctx context.Context, op operation, key string) error {
	out, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: s.table, Item: s.revocation(key), ReturnConsumedCapacity: s.metrics.capacityRequest(ctx)})
	if err != nil {
		return s.opError(op.String(), err)
	}
	s.metrics.consumed(ctx, op, kindWrite, out.ConsumedCapacity)
	return nil
}

// All returns the data of every unexpired session under this store's
// KeyPrefix, keyed by token without the prefix, as stored: under
// Options.HashTokens, the token's hash (or the clear token, for a session
// Options.ClearTokenFallback has not moved yet). With no sessions it
// returns an empty, non-nil map. It reads the whole table with Scan, page by page, so it
// costs read capacity for every item in the table; items that cannot be
// decoded are skipped and logged. It calls AllCtx with context.Background().
func (s *DynamoStore) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}

// AllCtx is like All with a context for the Scan requests.
func (s *DynamoStore) AllCtx(ctx context.Context) (sessions map[string][]byte, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opAll, start, err, true) }(time.Now())
	sessions = make(map[string][]byte)
	err = s.liveSessions(ctx, opAll, s.now(), func(key string, _ map[string]types.AttributeValue, data []byte, _ int64) {
		sessions[key[len(s.prefix):]] = data
	})
	if err != nil {
		return nil, err
	}
	return sessions, nil
}

// liveSessions scans the table page by page, with ConsistentRead, and
// calls fn with the key, the item, the data and the expiry of every session
// under this store's KeyPrefix that is unexpired at now; items it cannot
// read are logged and skipped. The Scan is billed for every item in the
// table.
func (s *DynamoStore) liveSessions(ctx context.Context, op operation, now time.Time, fn func(key string, item map[string]types.AttributeValue, data []byte, expiry int64)) error {
	// The filter only saves transfer: a Scan is billed for every item it
	// reads. It drops the expired sessions and revocations; the rest are
	// classified below.
	filter, names, values := sessionitem.ExpiredCondition(s.names, now)
	filter = "NOT (" + filter + ")"
	p := dynamodb.NewScanPaginator(s.client, &dynamodb.ScanInput{
		TableName:                 s.table,
		ConsistentRead:            s.consistent,
		FilterExpression:          &filter,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnConsumedCapacity:    s.metrics.capacityRequest(ctx),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.opError(op.String(), err)
		}
		s.metrics.consumed(ctx, op, kindRead, page.ConsumedCapacity)
		for _, item := range page.Items {
			if sessionitem.Classify(item, s.names) != sessionitem.Session {
				continue // a revocation, or not this store's
			}
			data, expiry, err := s.decode(item)
			if err != nil {
				s.logUnreadable(op.String(), err)
				continue
			}
			if !sessionitem.Expired(expiry, now) {
				fn(item[s.keyAttr].(*types.AttributeValueMemberS).Value, item, data, expiry)
			}
		}
	}
	return nil
}

// logUnreadable warns of an item that op could not read: its error names
// the attribute, never the key or the data. The first ten warnings of a
// store are logged, then one a minute.
func (s *DynamoStore) logUnreadable(op string, err error) {
	s.unreadable.Do(func() {
		s.logger.Warn("dynamostore: "+op+": an item that cannot be read is no session; skipped", "table", s.tableName, "error", err)
	})
}
