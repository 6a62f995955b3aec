// Package sessionitem holds the rules for a session item's expiry that the
// store and the command-line tool share, so that both read an item alike.
//
// An item's expiry is in two attributes. ExpiryAttribute is the table's TTL
// attribute: whole Unix seconds, the format DynamoDB documents for TTL,
// rounded up so that TTL never deletes a live session. ExpiryAttribute
// followed by MillisSuffix holds the exact expiry in Unix milliseconds. An
// item without it (written before it existed, or by another tool) expires at
// the start of its ExpiryAttribute's second.
package sessionitem

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

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
