package dynamostore

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// Seed corpora live in testdata/fuzz. `make test` runs each target for a few
// seconds; `make fuzz FUZZTIME=10m` runs longer.

// FuzzDecode feeds decode items of arbitrary shape: each of the data and
// expiry attributes missing or of any type, data under the plain, the
// compressed or the sealed attribute, arbitrary bytes where zstd frames or
// ciphertexts are expected, and data sealed for real. decode must never
// panic, must return the data and expiry it was given when they are well
// formed, and its errors name attributes only.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(1), []byte("session"), uint8(3), "1795000000", uint8(0))
	f.Add(uint8(1), []byte("session"), uint8(3), "1795000000.75", uint8(2))
	f.Add(uint8(1), []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0}, uint8(3), "-1", uint8(1))
	f.Add(uint8(2), []byte("a string"), uint8(2), "1795000000", uint8(0))
	f.Add(uint8(0), []byte(nil), uint8(0), "", uint8(0))
	f.Add(uint8(6), []byte("list"), uint8(3), "1e400", uint8(1))
	f.Add(uint8(1), []byte{}, uint8(3), "NaN", uint8(2))
	f.Add(uint8(1), []byte("not a ciphertext"), uint8(3), "1795000000", uint8(3))
	f.Add(uint8(1), []byte("session"), uint8(3), "1795000000", uint8(4))
	aead := newAEAD(f)
	s := NewWithCleanupInterval(offline{}, 0, func(o *Options) { o.Encryption = aead })
	f.Fuzz(func(t *testing.T, dataKind uint8, data []byte, expKind uint8, exp string, mode uint8) {
		// mode%5: 0 plain, 1 arbitrary bytes as zstd, 2 zstd, 3 arbitrary
		// bytes as a ciphertext, 4 sealed.
		const key = "fuzz-key"
		item := map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: key}}
		stored := data
		name := s.dataAttr
		switch mode % 5 {
		case 1:
			name = s.dataAttrs[1]
		case 2:
			name, stored = s.dataAttrs[1], zstdEncoder().EncodeAll(data, nil)
		case 3:
			name = s.dataAttrs[2]
		case 4:
			sealed, err := aead.Encrypt(data, associatedData(key, false))
			if err != nil {
				t.Fatal(err)
			}
			name, stored = s.dataAttrs[2], sealed
		}
		if v := attributeOfKind(dataKind, stored); v != nil {
			item[name] = v
		}
		if v := attributeOfKind(expKind, []byte(exp)); v != nil {
			item[s.expiryAttr] = v
		}
		got, expiry, err := s.decode(item)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "corrupt item: attribute ") {
				t.Fatalf("got error %q: expected one naming an attribute only", err)
			}
			return
		}
		if dataKind%8 != 1 || expKind%8 != 3 {
			t.Fatalf("decoded data of kind %d and expiry of kind %d: expected an error", dataKind%8, expKind%8)
		}
		// Whole seconds only, as items written before the exact expiry:
		// the start of that second.
		seconds, perr := sessionitem.ParseNumber(exp)
		if want := seconds * 1000; perr != nil || want/1000 == seconds && expiry != want {
			t.Fatalf("got expiry %d ms from %q s: expected %d (%v)", expiry, exp, want, perr)
		}
		if m := mode % 5; m != 1 && m != 3 && !bytes.Equal(got, data) {
			t.Fatalf("got %q: expected %q", got, data)
		}
		if got == nil {
			t.Fatal("got nil data: expected an empty slice at least")
		}
	})
}

// attributeOfKind returns b as an attribute value of one of eight kinds, or
// nil for the missing attribute.
func attributeOfKind(kind uint8, b []byte) types.AttributeValue {
	switch kind % 8 {
	case 1:
		return &types.AttributeValueMemberB{Value: b}
	case 2:
		return &types.AttributeValueMemberS{Value: string(b)}
	case 3:
		return &types.AttributeValueMemberN{Value: string(b)}
	case 4:
		return &types.AttributeValueMemberNULL{Value: true}
	case 5:
		return &types.AttributeValueMemberBOOL{Value: len(b) > 0}
	case 6:
		return &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberB{Value: b}}}
	case 7:
		return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"data": &types.AttributeValueMemberB{Value: b}}}
	}
	return nil
}

// FuzzToken sends tokens of any bytes and length, with any data, through
// Commit, Find and Delete on DynamoDB Local. A token the store can key is
// stored, read back and deleted; one it cannot (empty, not UTF-8, too long,
// the sweeper's lease) makes Commit fail with a fixed message that does not
// echo the token, and Find and Delete find nothing. Nothing panics.
func FuzzToken(f *testing.F) {
	f.Add("session_token", []byte("data"), false)
	f.Add("", []byte("data"), false)
	f.Add("\xff\xfe", []byte{}, false)
	f.Add("#sweeper-lease", []byte("x"), false)
	f.Add(strings.Repeat("é", 1024), []byte("x"), true)
	f.Add(strings.Repeat("a", 2049), []byte("x"), false)
	f.Add("a\x00b", []byte(nil), true)
	f.Add("🙂 spaces and \"quotes\"", bytes.Repeat([]byte("gob"), 700), true)
	fns := newTable(f)
	// Each input's clock is a day past the last one's revocations, so that
	// an input may commit a token an earlier one deleted.
	var offset atomic.Int64
	clock := hooks{now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }}
	plain := newDynamoStore(newClient(f), 0, clock, fns)
	compressing := newDynamoStore(newClient(f), 0, clock, append(fns, func(o *Options) { o.CompressAbove = 1024 }))
	rejected := plain.Commit("", nil, time.Time{})
	f.Fuzz(func(t *testing.T, token string, data []byte, compress bool) {
		data = data[:min(len(data), 64<<10)] // well under the item limit
		s := plain
		if compress {
			s = compressing
		}
		// A request that hangs is a failure the fuzzer should report.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		offset.Add(int64(sessionitem.DefaultRevocationPeriod + time.Hour))
		expiry := s.now().Add(time.Hour)
		_, ok := s.key(token)
		if wantOK := len(token) <= maxKeyBytes && sessionitem.IsToken(token); ok != wantOK {
			t.Fatalf("key(%q) ok = %v: expected %v", token, ok, wantOK)
		}
		err := s.CommitCtx(ctx, token, data, expiry)
		if !ok {
			if err == nil || err.Error() != rejected.Error() {
				t.Fatalf("got %v: expected the fixed rejection %q", err, rejected)
			}
		} else if err != nil {
			t.Fatalf("commit: %v", err)
		}
		got, found, err := s.FindCtx(ctx, token)
		if err != nil || found != ok || ok && !bytes.Equal(got, data) {
			t.Fatalf("find: got %d bytes, %v, %v: expected found=%v with the data", len(got), found, err, ok)
		}
		if err := s.DeleteCtx(ctx, token); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, found, err := s.FindCtx(ctx, token); err != nil || found {
			t.Fatalf("find after delete: got %v, %v: expected not found", found, err)
		}
		if ok {
			// A request in flight commits it back: nothing is stored.
			if err := s.CommitCtx(ctx, token, data, expiry); err != nil {
				t.Fatalf("commit after delete: %v", err)
			}
			if _, found, err := s.FindCtx(ctx, token); err != nil || found {
				t.Fatalf("find after a commit of a deleted token: got %v, %v: expected not found", found, err)
			}
		}
	})
}
