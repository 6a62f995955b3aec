package sessionitem

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func TestExpiryValues(t *testing.T) {
	for _, c := range []struct {
		expiry          time.Time
		seconds, millis string
	}{
		{time.Unix(1795000000, 0), "1795000000", "1795000000000"},           // on the second: no rounding
		{time.Unix(1795000000, 1), "1795000001", "1795000000000"},           // a nanosecond past: the TTL second rounds up
		{time.Unix(1795000000, 300_000_000), "1795000001", "1795000000300"}, // x.300
		{time.Unix(1795000000, 999_999_999), "1795000001", "1795000000999"}, // milliseconds round down
		{time.Unix(1795000000, 1_000_000), "1795000001", "1795000000001"},   // x.001
		{time.Unix(-5, 0), "0", "0"},                                        // before 1970: clamped
		{time.Time{}, "0", "0"},                                             // zero time: clamped
	} {
		s, ms := ExpiryValues(c.expiry)
		if s != c.seconds || ms != c.millis {
			t.Errorf("ExpiryValues(%v) got %s, %s: expected %s, %s", c.expiry, s, ms, c.seconds, c.millis)
		}
	}
}

func TestExpiryMillis(t *testing.T) {
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	for _, c := range []struct {
		name string
		item map[string]types.AttributeValue
		want int64
		err  string // a part of the error, or "" for none
	}{
		{"exact", map[string]types.AttributeValue{"expires": n("1795000001"), "expires_ms": n("1795000000300")}, 1795000000300, ""},
		{"whole seconds only", map[string]types.AttributeValue{"expires": n("1795000000")}, 1795000000000, ""},
		{"decimal seconds", map[string]types.AttributeValue{"expires": n("1795000000.75")}, 1795000000000, ""},
		{"exact without seconds", map[string]types.AttributeValue{"expires_ms": n("1795000000300")}, 0, `attribute "expires" is missing`},
		{"seconds before millis", map[string]types.AttributeValue{"expires": n("1795000000"), "expires_ms": n("1795000099000")}, 1795000000000, ""},
		{"huge seconds", map[string]types.AttributeValue{"expires": n("1e300")}, math.MaxInt64, ""},
		{"negative seconds", map[string]types.AttributeValue{"expires": n("-1e300")}, math.MinInt64, ""},
		{"missing", map[string]types.AttributeValue{}, 0, `attribute "expires" is missing`},
		{"seconds not N", map[string]types.AttributeValue{"expires": &types.AttributeValueMemberS{Value: "1"}}, 0, `attribute "expires" is missing or not of type N`},
		{"seconds not a number", map[string]types.AttributeValue{"expires": n("soon")}, 0, `attribute "expires" is not a number`},
		{"millis not N", map[string]types.AttributeValue{"expires": n("1"), "expires_ms": &types.AttributeValueMemberS{Value: "1"}}, 0, `attribute "expires_ms" is not of type N`},
		{"millis not a number", map[string]types.AttributeValue{"expires": n("1"), "expires_ms": n("x")}, 0, `attribute "expires_ms" is not a number`},
	} {
		got, err := ExpiryMillis(c.item, "expires")
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: got %d, %v: expected %d", c.name, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || !strings.HasPrefix(err.Error(), "corrupt item: attribute ")):
			t.Errorf("%s: got %d, %v: expected an error with %q", c.name, got, err, c.err)
		}
	}
}

func TestExpired(t *testing.T) {
	expiry := time.Unix(1795000000, 300_000_000)
	seconds, millis := ExpiryValues(expiry)
	ms, err := ExpiryMillis(map[string]types.AttributeValue{"e": &types.AttributeValueMemberN{Value: seconds}, "e_ms": &types.AttributeValueMemberN{Value: millis}}, "e")
	if err != nil {
		t.Fatal(err)
	}
	for now, want := range map[time.Time]bool{
		expiry.Add(-time.Second):      false,
		expiry.Add(-time.Nanosecond):  false,
		expiry:                        true,
		expiry.Add(time.Nanosecond):   true,
		time.Unix(1795000000, 0):      false, // the expiry's second has begun
		time.Unix(1795000001, 0):      true,
		expiry.Add(999 * time.Second): true,
	} {
		if got := Expired(ms, now); got != want {
			t.Errorf("Expired at %v got %v: expected %v", now, got, want)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for v, want := range map[string]int64{"10": 10, "10.9": 10, "-1.5": -2, "1e3": 1000, "1e400": math.MaxInt64, "-1e400": math.MinInt64} {
		if got, err := ParseNumber(v); err != nil || got != want {
			t.Errorf("ParseNumber(%s) got %d, %v: expected %d", v, got, err, want)
		}
	}
	for _, v := range []string{"", "abc", "NaN", "0x10"} {
		if _, err := ParseNumber(v); err == nil {
			t.Errorf("ParseNumber(%q) got nil error: expected one", v)
		}
	}
}

// TestSweepReadTime: a 1 MB page is 128 read units, the limiter's burst;
// what is beyond it takes units/readRate seconds.
func TestSweepReadTime(t *testing.T) {
	for _, c := range []struct {
		bytes int64
		rate  float64
		want  time.Duration
	}{
		{bytes: 1 << 20, rate: 1, want: 0},                             // one page: the burst
		{bytes: 2 << 20, rate: 1, want: 128 * time.Second},             // the second page at 1 unit/s
		{bytes: 2<<20 + 1, rate: 2, want: 129 * time.Second / 2},       // a started unit counts whole
		{bytes: 10 << 30, rate: 0, want: 0},                            // no cap
		{bytes: 1 << 62, rate: 1e-300, want: time.Duration(1<<63 - 1)}, // clamped
	} {
		if got := SweepReadTime(c.bytes, c.rate); got != c.want {
			t.Errorf("SweepReadTime(%d, %v): got %v: expected %v", c.bytes, c.rate, got, c.want)
		}
	}
	// Unbounded in seconds: beyond what a Duration holds, and +Inf.
	if got, want := SweepReadSeconds(10<<30, 0.0001), float64(10<<30/ScanBytesPerReadUnit-MaxPageReadUnits)/0.0001; got != want {
		t.Errorf("SweepReadSeconds(10 GB, 0.0001): got %v: expected %v", got, want)
	}
	if got := SweepReadSeconds(1<<62, 1e-300); !math.IsInf(got, 1) {
		t.Errorf("SweepReadSeconds(1<<62, 1e-300): got %v: expected +Inf", got)
	}
	if MaxPageReadUnits != 128 {
		t.Errorf("got %d: expected 128 units in a 1 MB page", MaxPageReadUnits)
	}
}
