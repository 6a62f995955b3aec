package dynamostore

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/zstd"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// DynamoDB's limits, from its documentation.
const (
	maxItemBytes = 400 * 1024 // item size, attribute names included
	maxKeyBytes  = 2048       // partition key value
)

// maxDecodedBytes bounds what a compressed item may expand to, so a corrupt
// or hostile item cannot exhaust memory. Commit refuses to write more than
// this.
const maxDecodedBytes = sessionitem.MaxDecodedBytes

// storedOwner is a session's owner as its item holds it, which Reseal
// keeps whatever the store's Owner option says.
type storedOwner struct {
	owner string
	ok    bool
}

// key returns the item key for token, and false when the store cannot use
// it: a token is one or more base64url characters, as scs's are (see
// sessionitem.IsToken, which keeps a KeyPrefix a fence), and the key must
// fit DynamoDB's key limit.
func (s *DynamoStore) key(token string) (string, bool) {
	if len(s.prefix)+len(token) > maxKeyBytes || !sessionitem.IsToken(token) {
		return "", false
	}
	return s.prefix + token, true
}

// decode returns an item's session data and expiry in Unix milliseconds,
// opening and decompressing the data as its attribute's name says. Its
// errors name the attribute at fault, never the key or the data.
func (s *DynamoStore) decode(item map[string]types.AttributeValue) ([]byte, int64, error) {
	data, format, err := sessionitem.Data(item, s.dataAttr)
	if err != nil {
		return nil, 0, err
	}
	attr := s.dataAttrs[formatIndex(format)]
	switch {
	case format.Sealed && s.aead == nil:
		return nil, 0, fmt.Errorf("corrupt item: attribute %q is sealed, and the store has no Options.Encryption", attr)
	case format.Sealed:
		key, _ := item[s.keyAttr].(*types.AttributeValueMemberS)
		if key == nil {
			return nil, 0, fmt.Errorf("corrupt item: attribute %q, the key, is missing or not of type S", s.keyAttr)
		}
		if data, err = s.open(item, key.Value, data, format.Compressed); err != nil {
			// The AEAD's error says nothing a log needs: tampered, or a
			// key the keyset no longer has.
			return nil, 0, fmt.Errorf("corrupt item: attribute %q does not open with Options.Encryption (tampered with, its expiry, owner or format changed, copied from another key, or sealed with a key no longer in the keyset)", attr)
		}
	case s.requireSeal:
		return nil, 0, fmt.Errorf("corrupt item: attribute %q is not sealed, and Options.RequireEncryption is set", attr)
	}
	if format.Compressed {
		if data, err = decompress(data); err != nil {
			return nil, 0, fmt.Errorf("corrupt item: attribute %q is not zstd data of at most %d bytes", attr, maxDecodedBytes)
		}
	}
	if data == nil {
		data = []byte{}
	}
	expiry, err := sessionitem.ExpiryMillis(item, s.expiryAttr)
	if err != nil {
		return nil, 0, err
	}
	return data, expiry, nil
}

// formatIndex returns the index of f in sessionitem.Formats.
func formatIndex(f sessionitem.Format) int {
	i := 0
	if f.Compressed {
		i |= 1
	}
	if f.Sealed {
		i |= 2
	}
	return i
}

// notRevoked is the condition of a Commit: the item is no revocation, or
// one that ended before :now, in Unix milliseconds.
var (
	notRevoked  = "attribute_not_exists(#r) OR #r < :now"
	revokedName = map[string]string{"#r": sessionitem.RevokedAttribute}
)

// revocation returns the PutItem that replaces the item with key by a
// revocation lasting RevocationPeriod, with the condition of cond when it
// is not nil.
func (s *DynamoStore) revocation(ctx context.Context, key string, cond *dynamodb.PutItemInput) *dynamodb.PutItemInput {
	exp, expMs := sessionitem.ExpiryValues(s.now().Add(s.revokeFor))
	in := &dynamodb.PutItemInput{
		TableName: s.table,
		Item: map[string]types.AttributeValue{
			s.keyAttr:                    &types.AttributeValueMemberS{Value: key},
			s.expiryAttr:                 &types.AttributeValueMemberN{Value: exp},
			sessionitem.RevokedAttribute: &types.AttributeValueMemberN{Value: expMs},
		},
		ReturnConsumedCapacity: s.metrics.capacityRequest(ctx),
	}
	if cond != nil {
		in.ConditionExpression = cond.ConditionExpression
		in.ExpressionAttributeNames = cond.ExpressionAttributeNames
		in.ExpressionAttributeValues = cond.ExpressionAttributeValues
	}
	return in
}

// itemSize returns the size DynamoDB counts for a session item: the UTF-8
// bytes of each attribute name and value.
func (s *DynamoStore) itemSize(key, dataAttr string, dataLen int, expiry, expiryMs string) int {
	return len(s.keyAttr) + len(key) +
		len(dataAttr) + dataLen +
		len(s.expiryAttr) + numberSize(expiry) +
		len(s.expiryMsAttr) + numberSize(expiryMs)
}

// numberSize returns the bytes DynamoDB stores for a non-negative integer in
// decimal: one byte per pair of digits, counted from the decimal point up to
// the last non-zero pair, plus one. This is at least the "1 byte per two
// significant digits plus 1" of the documentation, so the limit is never
// underestimated.
func numberSize(digits string) int {
	digits = strings.TrimLeft(digits, "0")
	if len(digits)%2 == 1 {
		digits = "0" + digits
	}
	for strings.HasSuffix(digits, "00") {
		digits = digits[:len(digits)-2]
	}
	return len(digits)/2 + 1
}

var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		return e
	})
)

// compress returns b compressed with zstd, or nil when that is no smaller.
// Room for half of b is one allocation for the sessions that compress well
// (BenchmarkCodec).
func compress(b []byte) []byte {
	z := zstdEncoder().EncodeAll(b, make([]byte, 0, len(b)/2))
	if len(z) >= len(b) {
		return nil
	}
	return z
}

// decompress is sessionitem.Decompress.
func decompress(z []byte) ([]byte, error) { return sessionitem.Decompress(z) }

// SessionValue returns an Owner function that decodes session data with codec (for
// example scs.GobCodec{} or sessionManager.Codec) and returns the value stored under
// key: a string as it is, an integer in decimal (named types included, and a float64
// holding a whole number, as JSON codecs decode IDs); anything else, or no value, is no owner.
// An empty string is no owner either. It decodes the data on every Commit.
func SessionValue(codec scs.Codec, key string) func(data []byte) (owner string, ok bool) {
	return func(data []byte) (string, bool) {
		_, values, err := codec.Decode(data)
		if err != nil {
			return "", false
		}
		return ownerString(values[key])
	}
}

// maxExactFloat is the largest integer up to which every integer is a
// float64: beyond it, an ID decoded into a float64 may not be the one sent.
const maxExactFloat = 1 << 53

// ownerString returns v as an owner, if it is a non-empty string, an integer,
// or a float holding a whole number that a float64 represents exactly.
func ownerString(v any) (string, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), rv.Len() > 0
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		if f := rv.Float(); f == math.Trunc(f) && math.Abs(f) <= maxExactFloat {
			return strconv.FormatInt(int64(f), 10), true
		}
	}
	return "", false
}

// validOwner reports whether DynamoDB can index owner: a partition key of a
// global secondary index is a non-empty string of at most 2048 bytes, and
// the SDK would silently replace invalid UTF-8.
func validOwner(owner string) bool {
	return owner != "" && len(owner) <= maxKeyBytes && utf8.ValidString(owner)
}

// owner returns the owner of a session with data b, when Options.Owner is
// set and names one that DynamoDB can index.
func (s *DynamoStore) owner(b []byte) (string, bool) {
	if s.ownerOf == nil {
		return "", false
	}
	owner, ok := s.ownerOf(b)
	if !ok {
		return "", false
	}
	if !validOwner(owner) {
		s.badOwnerLog.Do(func() {
			s.logger.Warn("dynamostore: commit: session stored without an owner: Options.Owner returned one that is empty, not valid UTF-8 or over 2048 bytes, which DynamoDB cannot index",
				"table", s.tableName)
		})
		return "", false
	}
	return owner, true
}
