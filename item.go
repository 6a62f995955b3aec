package dynamostore

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/zstd"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// DynamoDB's limits, from its documentation.
const (
	maxItemBytes = 400 * 1024              // item size, attribute names included
	maxKeyBytes  = sessionitem.MaxKeyBytes // partition key value
)

// maxDecodedBytes bounds what a compressed item may expand to, so a corrupt
// or hostile item cannot exhaust memory. Commit refuses to write more than
// this.
const maxDecodedBytes = sessionitem.MaxDecodedBytes

// itemRules are the rules of the store's items, as its Options set them:
// the key and its fence, the data's encoding, compression and sealing, the
// expiry, the owner and the revocation. Its methods are functions of an
// item, or of a session, and the options; none calls DynamoDB, which is
// the store's (dynamostore.go) and the call helpers' (call.go) business.
type itemRules struct {
	keyAttr      string
	dataAttr     string
	dataAttrs    [4]string // by format: see formatIndex
	expiryAttr   string
	expiryMsAttr string // the exact expiry, in Unix milliseconds
	ownerAttr    string
	compress     int // CompressAbove; 0 for never
	prefix       string
	hashTokens   bool                        // Options.HashTokens
	aead         AEAD                        // Options.Encryption
	requireSeal  bool                        // Options.RequireEncryption, with Encryption
	revokeFor    time.Duration               // Options.RevocationPeriod
	ownerOf      func([]byte) (string, bool) // Options.Owner

	// names are the names of sessionitem's rules: which items are this
	// store's sessions, and which have expired.
	names sessionitem.Names

	now func() time.Time
}

// newItemRules returns the rules of resolved options o, with clock now.
func newItemRules(o Options, now func() time.Time) itemRules {
	r := itemRules{
		keyAttr:      o.KeyAttribute,
		dataAttr:     o.DataAttribute,
		expiryAttr:   o.ExpiryAttribute,
		expiryMsAttr: o.ExpiryAttribute + sessionitem.MillisSuffix,
		ownerAttr:    o.OwnerAttribute,
		compress:     max(o.CompressAbove, 0),
		prefix:       o.KeyPrefix,
		hashTokens:   o.HashTokens,
		aead:         o.Encryption,
		requireSeal:  o.RequireEncryption && o.Encryption != nil,
		revokeFor:    o.RevocationPeriod,
		ownerOf:      o.Owner,
		names:        sessionitem.Names{Prefix: o.KeyPrefix, Key: o.KeyAttribute, Data: o.DataAttribute, Expiry: o.ExpiryAttribute},
		now:          now,
	}
	for i, f := range sessionitem.Formats {
		r.dataAttrs[i] = f.Attribute(o.DataAttribute)
	}
	return r
}

// storedOwner is a session's owner as its item holds it, and when it was
// last written (sessionitem.LastWriteAttribute's value, or "" for none),
// which Reseal keeps whatever the store's Owner option says.
type storedOwner struct {
	owner     string
	ok        bool
	lastWrite string
	hashed    bool // whether the item is marked sessionitem.HashedKeyAttribute
}

// key returns the item key for token, and false when the store cannot use
// it: a token is one or more base64url characters, as scs's are (see
// sessionitem.IsToken, which keeps a KeyPrefix a fence), and the key must
// fit DynamoDB's key limit. Under Options.HashTokens the key holds the
// token's hash (sessionitem.HashToken), and the token must also be one
// that clearKey can use.
func (s *itemRules) key(token string) (string, bool) {
	key, ok := s.clearKey(token)
	if !ok || !s.hashTokens {
		return key, ok
	}
	token = sessionitem.HashToken(token)
	if len(s.prefix)+len(token) > maxKeyBytes {
		return "", false
	}
	return s.prefix + token, true
}

// clearKey is key without Options.HashTokens: the token's key in a table
// keyed by clear tokens.
func (s *itemRules) clearKey(token string) (string, bool) {
	if len(s.prefix)+len(token) > maxKeyBytes || !sessionitem.IsToken(token) {
		return "", false
	}
	return s.prefix + token, true
}

// storedOwner returns the owner of item as it holds it, the time of its
// last write and whether it is marked as written under a hashed token, for
// a write that keeps them whatever the store's options say: Reseal's, and
// a move under Options.ClearTokenFallback (which marks what it moves).
func (s *itemRules) storedOwner(item map[string]types.AttributeValue) *storedOwner {
	_, hashed := item[sessionitem.HashedKeyAttribute]
	keep := &storedOwner{hashed: hashed}
	if o, ok := item[s.ownerAttr].(*types.AttributeValueMemberS); ok {
		keep.owner, keep.ok = o.Value, true
		if w, ok := item[sessionitem.LastWriteAttribute].(*types.AttributeValueMemberN); ok {
			keep.lastWrite = w.Value
		}
	}
	return keep
}

// encode returns the item that stores a session with key, data b and
// expiry, and owner when hasOwner is true: compressed and sealed as the
// options say, and marked sessionitem.HashedKeyAttribute when hashed is
// true. A session with an owner records when it was written, lastWrite
// (Unix milliseconds), or now when lastWrite is "". Its error
// wraps ErrTooLarge when the item would exceed DynamoDB's limit, before
// any request; it never holds the key or the data.
func (s *itemRules) encode(key string, b []byte, expiry time.Time, owner string, hasOwner bool, lastWrite string, hashed bool) (map[string]types.AttributeValue, error) {
	exp, expMs := sessionitem.ExpiryValues(expiry)
	if floor := s.now().AddDate(-4, 0, 0); expiry.Before(floor) {
		// DynamoDB's TTL skips items whose TTL attribute is more than five
		// years past (a zero time.Time, say): such a session's is four
		// years past, so that TTL still deletes it. The exact expiry
		// stays in milliseconds.
		exp, _ = sessionitem.ExpiryValues(floor)
	}
	var format sessionitem.Format
	stored := b
	if s.compress > 0 && len(b) >= s.compress {
		if len(b) > maxDecodedBytes {
			return nil, fmt.Errorf("%d bytes of data exceed the %d-byte limit for compressed sessions: %w", len(b), maxDecodedBytes, ErrTooLarge)
		}
		if z := compress(b); z != nil {
			format.Compressed, stored = true, z
		}
	}
	if s.aead != nil {
		ms, _ := strconv.ParseInt(expMs, 10, 64)
		sealed, err := s.aead.Encrypt(stored, sealBinding(key, format.Compressed, hashed, ms, owner, hasOwner))
		if err != nil {
			return nil, fmt.Errorf("encrypt: %w", err)
		}
		format.Sealed, stored = true, append([]byte{sealVersion}, sealed...)
	}
	attr := s.dataAttrs[formatIndex(format)]
	size := s.itemSize(key, attr, len(stored), exp, expMs)
	if hasOwner {
		if lastWrite == "" {
			lastWrite = strconv.FormatInt(s.now().UnixMilli(), 10)
		}
		size += len(s.ownerAttr) + len(owner) + len(sessionitem.LastWriteAttribute) + numberSize(lastWrite)
	}
	if hashed {
		size += len(sessionitem.HashedKeyAttribute) + 1
	}
	if size > maxItemBytes {
		return nil, fmt.Errorf("%d bytes of data (%d stored) make a %d-byte item: %w", len(b), len(stored), size, ErrTooLarge)
	}
	if stored == nil {
		// The SDK sends a nil binary value as a missing one; store empty data.
		stored = []byte{}
	}
	// PutItem replaces the whole item, so a session that no longer has an
	// owner loses the attribute, and with it its entry in the owner index.
	item := map[string]types.AttributeValue{
		s.keyAttr:      &types.AttributeValueMemberS{Value: key},
		attr:           &types.AttributeValueMemberB{Value: stored},
		s.expiryAttr:   &types.AttributeValueMemberN{Value: exp},
		s.expiryMsAttr: &types.AttributeValueMemberN{Value: expMs},
	}
	if hasOwner {
		// Only what has an owner is listed by it, so only that pays for
		// the time of its last write.
		item[s.ownerAttr] = &types.AttributeValueMemberS{Value: owner}
		item[sessionitem.LastWriteAttribute] = &types.AttributeValueMemberN{Value: lastWrite}
	}
	if hashed {
		item[sessionitem.HashedKeyAttribute] = &types.AttributeValueMemberBOOL{Value: true}
	}
	return item, nil
}

// decode returns an item's session data and expiry in Unix milliseconds,
// opening and decompressing the data as its attribute's name says. Its
// errors name the attribute at fault, never the key or the data.
func (s *itemRules) decode(item map[string]types.AttributeValue) ([]byte, int64, error) {
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
			return nil, 0, fmt.Errorf("corrupt item: attribute %q does not open with Options.Encryption (tampered with, its expiry, owner, format or hashed-token mark changed, copied from another key, or sealed with a key no longer in the keyset)", attr)
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

// revocation returns the item that replaces the one with key when it is
// deleted: a revocation lasting RevocationPeriod from now.
func (s *itemRules) revocation(key string) map[string]types.AttributeValue {
	exp, expMs := sessionitem.ExpiryValues(s.now().Add(s.revokeFor))
	return map[string]types.AttributeValue{
		s.keyAttr:                    &types.AttributeValueMemberS{Value: key},
		s.expiryAttr:                 &types.AttributeValueMemberN{Value: exp},
		sessionitem.RevokedAttribute: &types.AttributeValueMemberN{Value: expMs},
	}
}

// itemSize returns the size DynamoDB counts for a session item: the UTF-8
// bytes of each attribute name and value.
func (s *itemRules) itemSize(key, dataAttr string, dataLen int, expiry, expiryMs string) int {
	return len(s.keyAttr) + len(key) +
		len(dataAttr) + dataLen +
		len(s.expiryAttr) + numberSize(expiry) +
		len(s.expiryMsAttr) + numberSize(expiryMs)
}

// storedSize returns the size DynamoDB counts for item, as itemSize does
// for the items the store writes: the UTF-8 bytes of each attribute's name
// and value, a number by numberSize. A value of a type the store never
// writes counts as DynamoDB documents it: 1 byte for a boolean or null,
// and 3 bytes plus 1 per element, and the elements, for a list or map.
func storedSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

// valueSize is storedSize for one attribute value.
func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(strings.TrimLeft(v.Value, "-"))
	case *types.AttributeValueMemberL:
		n := 3 + len(v.Value)
		for _, e := range v.Value {
			n += valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		return 3 + len(v.Value) + storedSize(v.Value)
	case *types.AttributeValueMemberSS:
		n := 0
		for _, e := range v.Value {
			n += len(e)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, e := range v.Value {
			n += len(e)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, e := range v.Value {
			n += numberSize(strings.TrimLeft(e, "-"))
		}
		return n
	}
	return 1 // a boolean or null
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

// validOwner reports whether DynamoDB can index owner, by the rule the tool
// shares (sessionitem.CheckOwner).
func validOwner(owner string) bool {
	return sessionitem.CheckOwner(owner) == nil
}

// owner returns the owner of a session with data b, when Options.Owner is
// set and names one. invalid is true when it names one that DynamoDB
// cannot index, which is stored as no owner.
func (s *itemRules) owner(b []byte) (owner string, ok, invalid bool) {
	if s.ownerOf == nil {
		return "", false, false
	}
	owner, ok = s.ownerOf(b)
	if !ok {
		return "", false, false
	}
	if !validOwner(owner) {
		return "", false, true
	}
	return owner, true, false
}
