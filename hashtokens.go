package dynamostore

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// ClearTokenStats counts what Options.ClearTokenFallback did since the
// store was created. Once no instance has counted a move for a session
// lifetime (scs's SessionManager.Lifetime), no session is left under a
// clear token that scs could still send, and the fallback can be turned
// off; the dynamostore.clear_token_fallback metric gives the same counts
// for every instance.
//
// A Find that reads the clear token's key while another instance moves
// the same session, and serves what that instance moved, counts in
// neither: the other instance counts the move.
type ClearTokenStats struct {
	// Moved counts the Finds that found a live session under the clear
	// token and moved it under the hashed one.
	Moved uint64
	// NotFound counts the Finds that read the clear token's key and found
	// no session to move: none, an expired one, one that cannot be read,
	// or a revocation.
	NotFound uint64
}

// clearTokenCounts are the counts behind ClearTokenStats.
type clearTokenCounts struct {
	moved, notFound atomic.Uint64
}

// ClearTokenStats returns what Options.ClearTokenFallback did since the
// store was created: all zero without it.
func (s *DynamoStore) ClearTokenStats() ClearTokenStats {
	return ClearTokenStats{Moved: s.clearTokens.moved.Load(), NotFound: s.clearTokens.notFound.Load()}
}

// counted records the end of a read of a clear token's key: a move, or
// nothing to move.
func (s *DynamoStore) counted(ctx context.Context, moved bool) {
	if moved {
		s.clearTokens.moved.Add(1)
		s.metrics.clearTokens.Add(ctx, 1, s.metrics.moved...)
		return
	}
	s.clearTokens.notFound.Add(1)
	s.metrics.clearTokens.Add(ctx, 1, s.metrics.notMoved...)
}

// findClear is Find's fallback under Options.ClearTokenFallback, once key,
// the token's hashed key, held no session and no revocation: it reads the
// token's clear key and moves a live session found there under key.
//
// The move is two conditional writes. The first stores the session under
// key with CommitNewCtx's condition, so that of two instances moving it at
// once one stores it and the other serves what it stored, and a Commit or
// Delete of the hashed key in between wins. The second replaces the clear
// item with a revocation, if it is still the session moved. A revocation
// rather than a delete, at the same cost (a write is billed on the larger
// item), because:
//   - an instance still on clear tokens, whose request was in flight, cannot
//     commit the clear item back (its Commit stores nothing), so no second
//     copy is left to be moved in again once the hashed one has expired;
//   - a Find that reads the clear key just after another instance moved the
//     session finds the revocation and reads the hashed key again, rather
//     than answer "not found" and log the user out; without it, telling
//     "moved a moment ago" from "never here" would cost a third read on
//     every miss;
//   - the web role needs no DeleteItem: GetItem and PutItem still do.
//
// If the clear item changed since it was read, and is now a revocation,
// an instance still on clear tokens logged the session out meanwhile: the
// move revokes the hashed key too, and the session is not served. Any
// other change there (a Commit on such an instance) is left as it is:
// the hashed copy is served, and the clear one, never moved while the
// hashed key holds a live session or a revocation, ends at its expiry.
func (s *DynamoStore) findClear(ctx context.Context, token, key string) ([]byte, time.Time, bool, error) {
	clear, _ := s.clearKey(token) // key(token) held, so this does
	item, err := s.getItem(ctx, opFind, clear, s.consistent)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	if _, hashed := item[sessionitem.HashedKeyAttribute]; hashed {
		// A hash sent as a cookie, such as a stored key read from the
		// table: the session it names is another's, and stays theirs.
		s.counted(ctx, false)
		return nil, time.Time{}, false, nil
	}
	data, expiry, found := s.session(opFind, item)
	if !found {
		if sessionitem.Revoked(item) {
			// Moved a moment ago by another instance, or logged out: the
			// hashed key holds what is left.
			if data, expiry, found, err := s.findKey(ctx, key); err != nil || found {
				return data, expiry, found, err
			}
		}
		s.counted(ctx, false)
		return nil, time.Time{}, false, nil
	}
	keep := s.storedOwner(item)
	keep.hashed = true // now under the hashed key
	stored, err := s.commitNew(ctx, opFind, key, data, expiry, keep)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	if !stored {
		// Another instance moved it first, or a Commit or Delete of the
		// hashed key came in between: what the hashed key holds wins.
		return s.findKey(ctx, key)
	}
	s.counted(ctx, true)
	cond, names, values := s.unchanged(item)
	revoked, err := s.putIf(ctx, opFind, &dynamodb.PutItemInput{
		TableName:                 s.table,
		Item:                      s.revocation(clear),
		ConditionExpression:       &cond,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	switch {
	case err != nil:
		// The session is safe under the hashed key, which Find reads
		// first; the clear copy is never moved again while the hashed
		// key holds the session or a revocation, and ends with the
		// expiry they share.
		s.logger.Warn("dynamostore: find: a session moved under its hashed token, but its copy under the clear token could not be revoked; it stays until it expires",
			"table", s.tableName, "error", err)
	case !revoked:
		again, err := s.getItem(ctx, opFind, clear, strongRead)
		if err != nil || sessionitem.Revoked(again) {
			// Logged out on an instance still on clear tokens (or,
			// when the read failed, perhaps so): a logout must win.
			if rerr := s.revoke(ctx, opFind, key); err == nil {
				err = rerr
			}
			return nil, time.Time{}, false, err
		}
	}
	return data, expiry, true, nil
}

// strongRead is the ConsistentRead of the reads that follow a write of
// another instance's, which an eventually consistent read could miss.
var strongRead = aws.Bool(true)

// findKey reads key once more, strongly consistent, and returns the
// session it holds, if any.
func (s *DynamoStore) findKey(ctx context.Context, key string) ([]byte, time.Time, bool, error) {
	item, err := s.getItem(ctx, opFind, key, strongRead)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	data, expiry, found := s.session(opFind, item)
	return data, expiry, found, nil
}

// unchanged returns the condition that the item under item's key is still
// item, a session: the same stored data, in the same format, and the same
// expiry. Any Commit since changes the one or the other (sealed data with
// a new nonce each time), and a revocation has no data. The condition
// carries the stored data once more; the write is billed on item size
// alone.
func (s *DynamoStore) unchanged(item map[string]types.AttributeValue) (string, map[string]string, map[string]types.AttributeValue) {
	names := map[string]string{"#e": s.expiryAttr, "#m": s.expiryMsAttr}
	values := map[string]types.AttributeValue{":e": item[s.expiryAttr]}
	cond := "#e = :e"
	for _, attr := range s.dataAttrs {
		if v, ok := item[attr]; ok {
			cond += " AND #d = :d"
			names["#d"], values[":d"] = attr, v
			break
		}
	}
	if v, ok := item[s.expiryMsAttr]; ok {
		cond += " AND #m = :m"
		values[":m"] = v
	} else {
		cond += " AND attribute_not_exists(#m)"
	}
	return cond, names, values
}

// hashedKeyOf returns the key that Options.HashTokens gives the session
// whose clear token's key is key (KeyPrefix and the token), and false when
// key has no token under the prefix or the hashed key would not fit.
func (s *DynamoStore) hashedKeyOf(key string) (string, bool) {
	if len(key) < len(s.prefix) || key[:len(s.prefix)] != s.prefix {
		return "", false
	}
	hashed := s.prefix + sessionitem.HashToken(key[len(s.prefix):])
	return hashed, len(hashed) <= maxKeyBytes
}

// listedID returns the ID OwnerSessions gives the session under key:
// sessionitem.SessionID of the key, or, under Options.ClearTokenFallback,
// of the hashed key a clear key's session moves to (hashed is whether the
// item is marked as written under a hashed token), so that a session keeps
// its ID when a Find moves it, and CurrentSessionID names it before that.
func (s *DynamoStore) listedID(key string, hashed bool) string {
	if s.opts.ClearTokenFallback && !hashed {
		if h, ok := s.hashedKeyOf(key); ok {
			return sessionitem.SessionID(h)
		}
	}
	return sessionitem.SessionID(key)
}

// isListedID reports whether id names the session under key, as the owner
// index lists it without its item: listedID of key, marked as hashed or
// not, since the index does not say.
func (s *DynamoStore) isListedID(key, id string) bool {
	return id != "" && (s.listedID(key, true) == id || s.listedID(key, false) == id)
}
