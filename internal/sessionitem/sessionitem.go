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
// the start of its ExpiryAttribute's second.
//
// The package also holds what else the store and the tool must agree on:
// the defaults of the names and settings they share, the key of the sweeper
// lease's item, and the key schema the table must have.
package sessionitem

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
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
// KeyPrefix followed by LeaseToken. scs tokens are base64url, so none can be
// LeaseToken, and the store refuses it as a token. The lease has no data or
// expiry attribute: it is no session, live, expired or unreadable.
const LeaseToken = "#sweeper-lease"

// MaxSweepSegments is the most parallel Scan segments a sweep may read:
// DynamoDB allows up to 1,000,000, but each segment keeps 8 deletes in
// flight, so more than 16 per CPU only adds goroutines and connections.
func MaxSweepSegments() int {
	return min(16*runtime.NumCPU(), 1_000_000)
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

// ExpiryMillis returns the expiry of item in Unix milliseconds, read as the
// package comment says. Its errors name the attribute at fault, never the
// item's key or data.
func ExpiryMillis(item map[string]types.AttributeValue, expiryAttr string) (int64, error) {
	if v, ok := item[expiryAttr+MillisSuffix]; ok {
		n, ok := v.(*types.AttributeValueMemberN)
		if !ok {
			return 0, fmt.Errorf("corrupt item: attribute %q is not of type N", expiryAttr+MillisSuffix)
		}
		ms, err := ParseNumber(n.Value)
		if err != nil {
			return 0, fmt.Errorf("corrupt item: attribute %q is not a number of milliseconds", expiryAttr+MillisSuffix)
		}
		return ms, nil
	}
	n, ok := item[expiryAttr].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("corrupt item: attribute %q is missing or not of type N", expiryAttr)
	}
	s, err := ParseNumber(n.Value)
	if err != nil {
		return 0, fmt.Errorf("corrupt item: attribute %q is not a number of seconds", expiryAttr)
	}
	switch {
	case s > math.MaxInt64/1000:
		return math.MaxInt64, nil
	case s < math.MinInt64/1000:
		return math.MinInt64, nil
	}
	return s * 1000, nil
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
