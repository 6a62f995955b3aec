// Package sessionitem holds the rules for a session item that the store and
// the command-line tool share, so that both read an item alike: which
// attribute holds the data, in which format, and when the session expires.
//
// The data is in exactly one of four attributes, whose name tells its
// format, since session data can start with any bytes and a header could
// not tell plain data from the rest: DataAttribute holds the bytes scs
// encodes; ZstdSuffix after the name marks them compressed with zstd, and
// SealedSuffix after that marks them sealed with an AEAD (compressed
// first, when both).
//
// An item's expiry is in two attributes. ExpiryAttribute is the table's TTL
// attribute: whole Unix seconds, the format DynamoDB documents for TTL,
// rounded up so that TTL never deletes a live session. ExpiryAttribute
// followed by MillisSuffix holds the exact expiry in Unix milliseconds. An
// item without it (written before it existed, or by another tool) expires at
// the start of its ExpiryAttribute's second; an item whose two attributes
// disagree, at the earlier (ExpiryMillis).
//
// Which items are a store's is the rule of Classify: a KeyPrefix is a
// fence (CheckPrefix), and only an item with a session's shape is a session.
//
// The package also holds what else the store and the tool must agree on:
// the defaults of the names and settings they share, the key of the sweeper
// lease's item, and the key schema the table must have.
package sessionitem

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/zstd"
)

// The defaults of the options the store and the command-line tool share.
const (
	DefaultTableName       = "sessions"
	DefaultKeyAttribute    = "session_key"
	DefaultDataAttribute   = "data"
	DefaultExpiryAttribute = "expires"
	DefaultOwnerAttribute  = "owner"
	DefaultOwnerIndex      = "owner-index"
	DefaultSweepGrace      = time.Minute
)

// LeaseToken is the token of the sweeper lease's item, whose key is
// KeyPrefix followed by LeaseToken. It is no token (IsToken), and it ends
// with a character no token holds, so the lease's key is no session's key
// under any prefix either: not even under KeyPrefix + "#". The lease has no
// data or expiry attribute: it is no session, live, expired or unreadable.
const LeaseToken = "#sweeper-lease#"

// LeaseOwnerAttribute and LeaseUntilAttribute are the sweeper lease's own
// attributes: its holder, and its end in Unix milliseconds. No option may
// name them.
const (
	LeaseOwnerAttribute = "lease_owner"
	LeaseUntilAttribute = "lease_until_ms"
)

// MaxSweepSegments is the most parallel Scan segments a sweep may read:
// DynamoDB allows up to 1,000,000, but each segment keeps 8 deletes in
// flight, so more than 16 per CPU only adds goroutines and connections.
func MaxSweepSegments() int {
	return min(16*runtime.NumCPU(), 1_000_000)
}

// ScanBytesPerReadUnit is how many bytes of items an eventually consistent
// Scan reads per read capacity unit, as DynamoDB bills it: 0.5 units per 4
// KB.
const ScanBytesPerReadUnit = 8 << 10

// MaxPageReadUnits is the most read capacity one Scan page consumes: the 1
// MB a page reads at most. A sweep's SweepReadRate limiter lets this much
// through at once (its burst) and the rest at its rate.
const MaxPageReadUnits = (1 << 20) / ScanBytesPerReadUnit

// SweepReadTime returns about how long a sweep capped at readRate read
// units per second, as SweepReadRate caps it, takes to scan tableBytes of
// items: the first MaxPageReadUnits at once, the rest at readRate. A
// readRate of 0 or less is no cap, and takes no time by this measure.
// It is SweepReadSeconds, at most the longest time.Duration (about 292
// years).
func SweepReadTime(tableBytes int64, readRate float64) time.Duration {
	seconds := SweepReadSeconds(tableBytes, readRate)
	if seconds >= math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(seconds * float64(time.Second))
}

// SweepReadSeconds is SweepReadTime in seconds, without its bound: a
// readRate small enough may make it +Inf.
func SweepReadSeconds(tableBytes int64, readRate float64) float64 {
	if readRate <= 0 || math.IsNaN(readRate) {
		return 0
	}
	units := math.Ceil(float64(max(tableBytes, 0)) / ScanBytesPerReadUnit)
	return max(units-MaxPageReadUnits, 0) / readRate
}

// CheckKeySchema returns an error unless the table's key is a single
// partition key of type S named keyAttr, saying what the key is instead.
func CheckKeySchema(t *types.TableDescription, keyAttr string) error {
	var keys []string
	for _, k := range t.KeySchema {
		typ := types.ScalarAttributeType("?")
		for _, d := range t.AttributeDefinitions {
			if aws.ToString(d.AttributeName) == aws.ToString(k.AttributeName) {
				typ = d.AttributeType
			}
		}
		keys = append(keys, fmt.Sprintf("%s %q (%s)", strings.ToLower(string(k.KeyType)), aws.ToString(k.AttributeName), typ))
	}
	if len(t.KeySchema) == 1 && t.KeySchema[0].KeyType == types.KeyTypeHash && aws.ToString(t.KeySchema[0].AttributeName) == keyAttr &&
		strings.HasSuffix(keys[0], "(S)") {
		return nil
	}
	return fmt.Errorf("the table's key is %s; want a partition key %q of type S and no sort key", strings.Join(keys, " and "), keyAttr)
}

// OwnerIndex returns the table's global secondary index named name, or
// nil when it has none, and an error when that index is not keyed on the
// partition key attr alone.
func OwnerIndex(t *types.TableDescription, name, attr string) (*types.GlobalSecondaryIndexDescription, error) {
	for i, g := range t.GlobalSecondaryIndexes {
		if aws.ToString(g.IndexName) != name {
			continue
		}
		if len(g.KeySchema) != 1 || g.KeySchema[0].KeyType != types.KeyTypeHash || aws.ToString(g.KeySchema[0].AttributeName) != attr {
			return &t.GlobalSecondaryIndexes[i], fmt.Errorf("index %q is not keyed on %q alone", name, attr)
		}
		return &t.GlobalSecondaryIndexes[i], nil
	}
	return nil, nil
}

// TTL returns the attribute of a table's TTL, as DescribeTimeToLive
// describes it, and whether TTL deletes items by it: its status is ENABLED
// or ENABLING. DISABLING and DISABLED, or no description, are off.
func TTL(d *types.TimeToLiveDescription) (attr string, on bool) {
	if d == nil {
		return "", false
	}
	switch d.TimeToLiveStatus {
	case types.TimeToLiveStatusEnabled, types.TimeToLiveStatusEnabling:
		return aws.ToString(d.AttributeName), true
	}
	return aws.ToString(d.AttributeName), false
}

// ZstdSuffix and SealedSuffix follow the data attribute's name to mark data
// compressed with zstd and sealed with an AEAD.
const (
	ZstdSuffix   = "_zstd"
	SealedSuffix = "_sealed"
)

// Format is how an item stores its session data.
type Format struct {
	Compressed bool // zstd
	Sealed     bool // encrypted and authenticated
}

// Attribute returns the name of the attribute that holds data in format f.
func (f Format) Attribute(dataAttr string) string {
	switch {
	case f.Compressed && f.Sealed:
		return dataAttr + ZstdSuffix + SealedSuffix
	case f.Compressed:
		return dataAttr + ZstdSuffix
	case f.Sealed:
		return dataAttr + SealedSuffix
	}
	return dataAttr
}

// Formats lists every format an item's data may be in.
var Formats = []Format{{}, {Compressed: true}, {Sealed: true}, {Compressed: true, Sealed: true}}

// Data returns the stored data of item, as it is in the table, and its
// format. Its errors, when the item has no data attribute of type B or more
// than one, name the attribute at fault, never the item's key or data.
func Data(item map[string]types.AttributeValue, dataAttr string) ([]byte, Format, error) {
	var (
		data  []byte
		found Format
		n     int
	)
	for _, f := range Formats {
		v, ok := item[f.Attribute(dataAttr)]
		if !ok {
			continue
		}
		b, ok := v.(*types.AttributeValueMemberB)
		if !ok {
			return nil, Format{}, fmt.Errorf("corrupt item: attribute %q is not of type B", f.Attribute(dataAttr))
		}
		data, found, n = b.Value, f, n+1
	}
	switch n {
	case 0:
		return nil, Format{}, fmt.Errorf("corrupt item: attribute %q (or it followed by %q, %q or %q) is missing",
			dataAttr, ZstdSuffix, SealedSuffix, ZstdSuffix+SealedSuffix)
	case 1:
		return data, found, nil
	}
	return nil, Format{}, fmt.Errorf("corrupt item: attribute %q is there in more than one format", dataAttr)
}

// MillisSuffix follows the expiry attribute's name in the name of the
// attribute that holds the exact expiry in Unix milliseconds.
const MillisSuffix = "_ms"

// ExpiryValues returns the two expiry attributes' values for a session that
// expires at expiry: whole seconds rounded up, and milliseconds rounded down,
// so that the session is never served after its expiry and TTL never
// deletes it before. Times before 1970 are clamped to zero, which is as
// expired as any past time.
func ExpiryValues(expiry time.Time) (seconds, millis string) {
	s := expiry.Unix()
	if expiry.Nanosecond() > 0 {
		s++
	}
	return strconv.FormatInt(max(s, 0), 10), strconv.FormatInt(max(expiry.UnixMilli(), 0), 10)
}

// ExpiryMillis returns the expiry of item in Unix milliseconds: the earlier
// of its ExpiryAttribute's second and its Expiry+MillisSuffix attribute's
// millisecond, when it has one. The store writes the second rounded up from
// the millisecond, so the millisecond is the expiry of every item it wrote;
// an item whose two attributes disagree is expired as soon as either says
// so, as TTL and the sweeper treat it. Its errors name the attribute at
// fault, never the item's key or data.
func ExpiryMillis(item map[string]types.AttributeValue, expiryAttr string) (int64, error) {
	n, ok := item[expiryAttr].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("corrupt item: attribute %q is missing or not of type N", expiryAttr)
	}
	s, err := ParseNumber(n.Value)
	if err != nil {
		return 0, fmt.Errorf("corrupt item: attribute %q is not a number of seconds", expiryAttr)
	}
	expiry := int64(math.MaxInt64)
	switch {
	case s < math.MinInt64/1000:
		expiry = math.MinInt64
	case s <= math.MaxInt64/1000:
		expiry = s * 1000
	}
	if v, ok := item[expiryAttr+MillisSuffix]; ok {
		n, ok := v.(*types.AttributeValueMemberN)
		if !ok {
			return 0, fmt.Errorf("corrupt item: attribute %q is not of type N", expiryAttr+MillisSuffix)
		}
		ms, err := ParseNumber(n.Value)
		if err != nil {
			return 0, fmt.Errorf("corrupt item: attribute %q is not a number of milliseconds", expiryAttr+MillisSuffix)
		}
		expiry = min(expiry, ms)
	}
	return expiry, nil
}

// ExpiredCondition returns a condition expression, with its attribute names
// and values, that holds for an item that Classify calls a session or a
// revocation, and that ExpiryMillis says had expired at at. It does not
// check that the key is a token under the prefix, which no expression can:
// it only requires that the key begins with the prefix. DeleteExpired's Scan
// filter and the condition of each of its deletes are this expression.
func ExpiredCondition(n Names, at time.Time) (string, map[string]string, map[string]types.AttributeValue) {
	names, values := conditionNames(n)
	values[":s"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(at.Unix(), 10)}
	values[":ms"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(at.UnixMilli(), 10)}
	cond := expiryTyped + " AND (#e <= :s OR #m <= :ms) AND (attribute_exists(#r) OR " + dataTyped + ")"
	if n.Prefix != "" {
		names["#k"] = n.Key
		values[":prefix"] = &types.AttributeValueMemberS{Value: n.Prefix}
		cond += " AND begins_with(#k, :prefix)"
	}
	return cond, names, values
}

// SessionCondition returns a condition expression, with its attribute names
// and values, that holds for an item that Classify calls a session, but
// for its key, which the caller names. DeleteOwner's deletes add it to
// their condition, so that they revoke nothing but sessions.
func SessionCondition(n Names) (string, map[string]string, map[string]types.AttributeValue) {
	names, values := conditionNames(n)
	return expiryTyped + " AND attribute_not_exists(#r) AND (" + dataTyped + ")", names, values
}

// LiveCondition is SessionCondition for a session that had not expired at
// at, by the rule of ExpiryMillis and Expired: its ExpiryAttribute's second
// and, when it has one, its Expiry+MillisSuffix attribute's millisecond
// are both after at. The revocations of the owner's sessions that
// DeleteOwnerExcept and LimitOwner write add it to their condition, so
// that they count no expired session as revoked.
func LiveCondition(n Names, at time.Time) (string, map[string]string, map[string]types.AttributeValue) {
	cond, names, values := SessionCondition(n)
	values[":s"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(at.Unix(), 10)}
	values[":ms"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(at.UnixMilli(), 10)}
	return cond + " AND #e > :s AND (attribute_not_exists(#m) OR #m > :ms)", names, values
}

// The parts of the conditions above: the expiry attributes of the types
// Classify requires, and a data attribute of type B in some format.
const (
	expiryTyped = "attribute_type(#e, :tn) AND (attribute_not_exists(#m) OR attribute_type(#m, :tn))"
	dataTyped   = "attribute_type(#d0, :tb) OR attribute_type(#d1, :tb) OR attribute_type(#d2, :tb) OR attribute_type(#d3, :tb)"
)

// conditionNames returns the names and values expiryTyped and dataTyped
// use, and #r for the revocation marker.
func conditionNames(n Names) (map[string]string, map[string]types.AttributeValue) {
	names := map[string]string{"#e": n.Expiry, "#m": n.Expiry + MillisSuffix, "#r": RevokedAttribute}
	for i, f := range Formats {
		names["#d"+strconv.Itoa(i)] = f.Attribute(n.Data)
	}
	values := map[string]types.AttributeValue{
		":tn": &types.AttributeValueMemberS{Value: "N"},
		":tb": &types.AttributeValueMemberS{Value: "B"},
	}
	return names, values
}

// Expired reports whether a session that expires at expiryMillis (Unix
// milliseconds) has expired at now: from that millisecond on.
func Expired(expiryMillis int64, now time.Time) bool {
	return now.UnixMilli() >= expiryMillis
}

// ParseNumber reads a DynamoDB number as an integer: as written, or rounded
// down when another tool wrote a decimal, and clamped to the int64 range.
func ParseNumber(v string) (int64, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) {
		return 0, errors.New("not a number")
	}
	f = math.Floor(f)
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, nil
	case f <= math.MinInt64:
		return math.MinInt64, nil
	}
	return int64(f), nil
}

// RevokedAttribute marks a revocation: the item that Delete leaves in a
// session's place, so that no Commit of the token stores it again while the
// revocation lasts. It holds the revocation's end in Unix milliseconds; the
// item's ExpiryAttribute holds the same end in whole seconds, rounded up, so
// that DynamoDB's TTL and the sweeper remove it once it no longer matters. A
// revocation has no data and no owner attribute: it is no session, live,
// expired or unreadable, and nothing counts it as one.
const RevokedAttribute = "revoked_until_ms"

// LastWriteAttribute holds, in a session that has an owner, when a Commit
// last wrote it, in Unix milliseconds, of type N: the order in which an
// owner's sessions are listed, and which of them LimitOwner keeps. A
// session without an owner has none. It is the store's own name, as
// RevokedAttribute is, and no option may name it. It costs an item at most
// 21 bytes: its 13-byte name and a 13-digit number, which DynamoDB stores
// in 8. It is not bound to a sealed session's data: it only orders an
// owner's sessions.
const LastWriteAttribute = "last_write_ms"

// HashedKeyAttribute marks, with the boolean true, an item that a store
// with Options.HashTokens wrote under a token's hash: 11 bytes of item.
// Such a key is no cookie, and a hash is as long as a token, so
// ClearTokenFallback never reads one as a clear token (else whoever reads
// the table could send a stored key as a cookie and take the session).
const HashedKeyAttribute = "key_hashed"

// The ID of a session, as OwnerSessions lists it, is the first idBytes of
// SHA-256 over idDomain and the session's key (KeyPrefix and the token as
// stored), in base64url without padding. The key is unambiguous, since a
// KeyPrefix ends with a character no token holds. 128 bits make two
// sessions of one owner collide never in practice and an ID no guess; the
// hash reveals neither the token nor the key; and its 22 characters are
// never the 43 of an scs token or of the hash HashTokenInStore stores, so
// as a cookie it is no session.
const (
	idDomain = "dynamostore owner session ID v1\x00"
	idBytes  = 16
)

// HashToken returns token hashed as scs hashes it with HashTokenInStore:
// SHA-256, in base64url without padding.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SessionID returns the ID of the session with key: the library lists and
// revokes sessions by it, and the tool prints it.
func SessionID(key string) string {
	sum := sha256.Sum256([]byte(idDomain + key))
	return base64.RawURLEncoding.EncodeToString(sum[:idBytes])
}

// DefaultRevocationPeriod is how long a revocation lasts unless the store's
// options say otherwise: scs's default SessionManager.Lifetime, so that a
// Commit of a revoked token after it stores a session that has already
// expired.
const DefaultRevocationPeriod = 24 * time.Hour

// Revoked reports whether item is a revocation rather than a session.
func Revoked(item map[string]types.AttributeValue) bool {
	_, ok := item[RevokedAttribute]
	return ok
}

// MaxKeyBytes is DynamoDB's limit on a partition key's value, in bytes: a
// session's key, and an owner, the owner index's partition key.
const MaxKeyBytes = 2048

// CheckOwner returns an error, saying why without the owner itself, when
// owner is none that DynamoDB can index as the owner index's partition key:
// a non-empty string of at most MaxKeyBytes bytes of valid UTF-8 (the SDK
// would silently replace invalid UTF-8). The store stores a session whose
// Options.Owner names such an owner as one with no owner.
func CheckOwner(owner string) error {
	switch {
	case owner == "":
		return errors.New("the owner is empty")
	case len(owner) > MaxKeyBytes:
		return fmt.Errorf("the owner is %d bytes, over DynamoDB's %d-byte limit on an index key", len(owner), MaxKeyBytes)
	case !utf8.ValidString(owner):
		return errors.New("the owner is not valid UTF-8")
	}
	return nil
}

// A KeyPrefix is a fence: a store reads, counts, rewrites and deletes only
// the items whose key is its KeyPrefix followed by a token, and a token is
// one or more base64url characters (A-Z, a-z, 0-9, '-' and '_'), as scs's
// tokens and the hashes of its HashTokenInStore are. A prefix must
// therefore be empty or end with a character that is not base64url, such
// as ':' or '#': then no key is under two prefixes, since what follows the
// shorter prefix in a key under the longer one holds that character. A
// prefix such as "app" cannot be fenced: "app2" + a token is "app" + a
// token too.

// CheckPrefix returns an error, naming KeyPrefix, when prefix cannot be
// fenced: it is not valid UTF-8, or ends with a base64url character.
func CheckPrefix(prefix string) error {
	switch {
	case prefix == "":
		return nil
	case !utf8.ValidString(prefix):
		return errors.New("KeyPrefix is not valid UTF-8")
	case isTokenByte(prefix[len(prefix)-1]):
		return fmt.Errorf("KeyPrefix %q ends with a character a token may hold (A-Z, a-z, 0-9, '-', '_'), so another prefix such as %q would share its keys; end it with one a token cannot hold, such as ':'",
			prefix, prefix+"2")
	}
	return nil
}

// IsToken reports whether token can be a session's token: one or more
// base64url characters.
func IsToken(token string) bool {
	if token == "" {
		return false
	}
	for i := 0; i < len(token); i++ {
		if !isTokenByte(token[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// Token returns the token of key under prefix, and false when key is not
// under prefix's fence: not the prefix followed by a token.
func Token(key, prefix string) (string, bool) {
	token, ok := strings.CutPrefix(key, prefix)
	return token, ok && IsToken(token)
}

// Kind is what an item is to a store.
type Kind int

const (
	// Other is anything that is neither a session nor a revocation under
	// the store's fence: another application's item, another prefix's
	// session, the sweeper lease, or an item without a session's shape.
	// No store reads, counts, rewrites or deletes it.
	Other Kind = iota
	// Revocation is what Delete leaves in a session's place.
	Revocation
	// Session is an item with a session's shape; whether it can be read
	// (opened, decompressed) is decided when it is.
	Session
)

// Names are the attribute names and the KeyPrefix by which a store reads
// its items.
type Names struct {
	Prefix, Key, Data, Expiry string
}

// Classify returns what item is to a store with names n. Both a session and
// a revocation are items whose key, of type S, is a token under the fence,
// with an Expiry attribute of type N and an Expiry+MillisSuffix attribute
// of type N or none. A revocation has the RevokedAttribute; a session has
// not, and has a data attribute of type B in at least one format.
// ExpiredCondition says the same to DynamoDB.
func Classify(item map[string]types.AttributeValue, n Names) Kind {
	key, ok := item[n.Key].(*types.AttributeValueMemberS)
	if !ok {
		return Other
	}
	if _, ok := Token(key.Value, n.Prefix); !ok {
		return Other
	}
	if _, ok := item[n.Expiry].(*types.AttributeValueMemberN); !ok {
		return Other
	}
	if v, ok := item[n.Expiry+MillisSuffix]; ok {
		if _, ok := v.(*types.AttributeValueMemberN); !ok {
			return Other
		}
	}
	if Revoked(item) {
		return Revocation
	}
	for _, f := range Formats {
		if _, ok := item[f.Attribute(n.Data)].(*types.AttributeValueMemberB); ok {
			return Session
		}
	}
	return Other
}

// MaxDecodedBytes bounds what a compressed item may expand to, so that a
// corrupt or planted item costs a Find at most a few MB (the store's
// TestDecompressBounded measures it). The store refuses to write more: 4
// MiB is ten times the 400 KB a DynamoDB item holds uncompressed.
const MaxDecodedBytes = 4 << 20

var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, _ := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxDecodedBytes),
		zstd.WithDecodeAllCapLimit(true)) // see Decompress
	return d
})

// unsizedLimit is the most a zstd frame that does not state its size may
// decode to. The store's encoder states the size of every input of 256
// bytes or more (TestDecompressBounded checks), so only smaller ones come
// without it.
const unsizedLimit = 64 << 10

// Decompress returns the data of the zstd frame z. It makes one buffer of
// the size the frame states, or of unsizedLimit when it states none, and
// decodes no more than fits: a planted frame that states no size (which
// would decode by growing buffers, about 94 MB of allocation for 15 MiB
// out) or is followed by another is refused, so an item costs a Find at
// most the size it states, itself at most MaxDecodedBytes
// (the store's TestDecompressBounded).
func Decompress(z []byte) ([]byte, error) {
	if len(z) == 0 {
		return nil, errors.New("empty")
	}
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return nil, err
	}
	size := uint64(unsizedLimit)
	if h.HasFCS {
		if h.FrameContentSize > MaxDecodedBytes {
			return nil, errors.New("the frame states a size over the limit")
		}
		size = h.FrameContentSize
	}
	data, err := zstdDecoder().DecodeAll(z, make([]byte, 0, size))
	if err == nil && h.HasFCS && uint64(len(data)) != size {
		err = errors.New("the frame's data is not the size it states")
	}
	return data, err
}
