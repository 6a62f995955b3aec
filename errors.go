package dynamostore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// ErrTooLarge is returned, wrapped, by Commit when the session data cannot fit
// in DynamoDB's 400 KB item limit together with the key, the expiry and the
// attribute names. Test for it with errors.Is. Nothing is written, so the
// session's previous data stays as it was.
var ErrTooLarge = errors.New("session too large for a DynamoDB item (400 KB limit)")

// ErrTableNotFound is wrapped, beside the SDK's
// *types.ResourceNotFoundException, by the error of any operation on a table
// that does not exist.
var ErrTableNotFound = errors.New("the table does not exist")

// ErrIndexNotFound is wrapped by the error of DeleteOwner, OwnerTokens,
// OwnerSessions, DeleteOwnerSession, DeleteOwnerExcept and LimitOwner
// when the table has no Options.OwnerIndex.
var ErrIndexNotFound = errors.New("the table has no such index")

// ErrClientMethod is wrapped by the error of an operation that needs a
// method the store's Client lacks: Query for DeleteOwner, OwnerTokens and
// the methods of OwnerSessionStore, BatchGetItem for OwnerTokens,
// OwnerSessions and LimitOwner; by CachedStore.DeleteOwner's when its
// backing store is no OwnerStore; and by CachedStore's OwnerSessions,
// DeleteOwnerSession, DeleteOwnerExcept and LimitOwner when it is no
// OwnerSessionStore.
var ErrClientMethod = errors.New("the Client lacks a method the operation needs")

// ErrInvalidOptions is wrapped by the error CheckOptions returns, and by
// the message of New's panic, when options cannot work.
var ErrInvalidOptions = errors.New("invalid options")

// opError wraps err from a DynamoDB request with the operation and the table,
// and says what to do when the table does not exist.
func (s *DynamoStore) opError(op string, err error) error {
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return fmt.Errorf("dynamostore: %s in table %q: %w; create it with dynamostore.CreateTable or `dynamostore create-table`: %w", op, s.tableName, ErrTableNotFound, err)
	}
	return fmt.Errorf("dynamostore: %s in table %q: %w", op, s.tableName, err)
}

// indexError is opError for a Query of OwnerIndex, which says what to do
// when the table has no such index.
func (s *DynamoStore) indexError(op string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationException" &&
		strings.Contains(apiErr.ErrorMessage(), "specified index") {
		return fmt.Errorf("dynamostore: %s in table %q: %w: the table has no index %q; add it with dynamostore.CreateTable or `dynamostore create-table`: %w",
			op, s.tableName, ErrIndexNotFound, *s.ownerIndex, err)
	}
	return s.opError(op, err)
}

// isConditionFailed reports whether err is a conditional write's failed
// condition.
func isConditionFailed(err error) bool {
	var condFailed *types.ConditionalCheckFailedException
	return errors.As(err, &condFailed)
}

// isUnknownOperation reports whether err says that the endpoint lacks the
// operation (some DynamoDB emulators have no TTL API).
func isUnknownOperation(err error) bool {
	return hasErrorCode(err, "UnknownOperationException")
}

// isAccessDenied reports whether err is DynamoDB refusing the request to
// the caller's role.
func isAccessDenied(err error) bool {
	return hasErrorCode(err, "AccessDeniedException")
}

func hasErrorCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}
