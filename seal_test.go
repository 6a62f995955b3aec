package dynamostore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// newAEAD returns the standard library's AES-256-GCM on a new random key,
// with a random nonce for every message.
func newAEAD(tb testing.TB) AEAD {
	tb.Helper()
	key := make([]byte, 32)
	rand.Read(key) // never fails: crypto/rand crashes the program instead
	block, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	a, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		tb.Fatal(err)
	}
	return gcmAEAD{a}
}

// gcmAEAD is a cipher.AEAD that makes its own nonces, as
// cipher.NewGCMWithRandomNonce's does, as the store's AEAD: Seal puts the
// nonce before the ciphertext and Open takes it from there.
type gcmAEAD struct{ aead cipher.AEAD }

func (g gcmAEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return g.aead.Seal(nil, nil, plaintext, associatedData), nil
}

func (g gcmAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return g.aead.Open(nil, nil, ciphertext, associatedData)
}

func withEncryption(a AEAD) func(*Options) {
	return func(o *Options) { o.Encryption = a }
}

// assertSealed fails unless the item's data is in the sealed attribute
// alone and holds no run of 8 bytes of data.
func assertSealed(t *testing.T, item map[string]types.AttributeValue, attr string, data []byte) {
	t.Helper()
	v, ok := item[attr].(*types.AttributeValueMemberB)
	if !ok {
		t.Fatalf("got item with %v: expected the data in %q", slices.Sorted(maps.Keys(item)), attr)
	}
	for _, f := range sessionitem.Formats {
		if a := f.Attribute("data"); a != attr && item[a] != nil {
			t.Fatalf("got %q beside %q: expected one data attribute", a, attr)
		}
	}
	for i := 0; i+8 <= len(data); i++ {
		if bytes.Contains(v.Value, data[i:i+8]) {
			t.Fatalf("found bytes %d to %d of the data in the sealed item", i, i+8)
		}
	}
}

func TestSealedCommitFind(t *testing.T) {
	t.Parallel()
	a := newAEAD(t)
	s := newStore(t, nil, withEncryption(a), func(o *Options) { o.CompressAbove = 1024 })
	// A reader with the key and other options reads every format too.
	reader := NewWithCleanupInterval(newClient(t), 0, func(o *Options) { o.TableName = s.tableName; o.Encryption = a })
	expiry := time.Now().Add(time.Hour)
	for _, c := range []struct {
		size int
		attr string
	}{{200, "data_sealed"}, {4096, "data_zstd_sealed"}} {
		data := gobSession(t, c.size, uint64(c.size))
		token := fmt.Sprintf("token-%d", c.size)
		if err := s.Commit(token, data, expiry); err != nil {
			t.Fatal(err)
		}
		assertSealed(t, rawItem(t, s, token), c.attr, data)
		for _, store := range []*DynamoStore{s, reader} {
			if b, found, err := store.Find(token); err != nil || !found || !bytes.Equal(b, data) {
				t.Fatalf("got %d bytes, %v, %v: expected the data back", len(b), found, err)
			}
		}
	}
	// All, the sweeper's Scan and the owner index read sealed items too.
	if all, err := s.All(); err != nil || len(all) != 2 {
		t.Fatalf("got %d sessions, %v: expected 2", len(all), err)
	}
}

// TestSealedBoundToKey: a ciphertext copied onto another session's key does
// not open, and is no session: not found, no error, a warning without the
// token or the data. A copy of the item under another table name opens.
func TestSealedBoundToKey(t *testing.T) {
	t.Parallel()
	a := newAEAD(t)
	var log syncBuffer
	s := newStore(t, nil, withEncryption(a), withLogger(&log), func(o *Options) { o.KeyPrefix = "app:" })
	data := []byte("d4t4-of-the-victim")
	if err := s.Commit("victim-token", data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	item := rawItem(t, s, "app:victim-token")
	copied := map[string]types.AttributeValue{}
	for k, v := range item {
		copied[k] = v
	}
	copied["session_key"] = &types.AttributeValueMemberS{Value: "app:attacker-token"}
	putRaw(t, s, copied)
	if b, found, err := s.Find("attacker-token"); found || err != nil {
		t.Fatalf("got %q, %v, %v: expected no session and no error", b, found, err)
	}
	got := log.String()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, s.tableName) || !strings.Contains(got, "data_sealed") ||
		strings.Contains(got, "attacker-token") || strings.Contains(got, "victim-token") || strings.Contains(got, string(data)) {
		t.Fatalf("got log %q: expected a warning naming the table and attribute, without token or data", got)
	}

	// A restore from a backup lands under a new table name.
	restored := newStore(t, nil, withEncryption(a), func(o *Options) { o.KeyPrefix = "app:" })
	putRaw(t, restored, item)
	if b, found, err := restored.Find("victim-token"); err != nil || !found || !bytes.Equal(b, data) {
		t.Fatalf("got %q, %v, %v: expected the session to open in the restored table", b, found, err)
	}
}

// TestSealedUnreadable: tampered ciphertext, a key the AEAD does not have,
// a Decrypt error and a store without Encryption each make an item no
// session, never an error.
func TestSealedUnreadable(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	a := newAEAD(t)
	s := NewWithCleanupInterval(client, 0, append(fns, withEncryption(a))...)
	for _, token := range []string{"tampered", "other-key", "decrypt-fails", "no-encryption"} {
		if err := s.Commit(token, []byte("data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	item := rawItem(t, s, "tampered")
	ct := bytes.Clone(item["data_sealed"].(*types.AttributeValueMemberB).Value)
	ct[len(ct)-1] ^= 1
	item["data_sealed"] = &types.AttributeValueMemberB{Value: ct}
	putRaw(t, s, item)

	cases := map[string]*DynamoStore{
		"tampered":      s,
		"other-key":     NewWithCleanupInterval(client, 0, append(fns, withEncryption(newAEAD(t)))...),
		"decrypt-fails": NewWithCleanupInterval(client, 0, append(fns, withEncryption(&failingAEAD{AEAD: a, decrypt: true}))...),
		"no-encryption": NewWithCleanupInterval(client, 0, fns...),
	}
	for token, store := range cases {
		if b, found, err := store.Find(token); found || err != nil {
			t.Fatalf("%s: got %q, %v, %v: expected no session and no error", token, b, found, err)
		}
		all, err := store.All()
		if _, ok := all[token]; ok || err != nil {
			t.Fatalf("%s: got %v from All: expected the item skipped", token, err)
		}
	}
	// Through a CachedStore too.
	if _, found, err := NewCached(cases["other-key"]).Find("other-key"); found || err != nil {
		t.Fatalf("got %v, %v: expected no session through the cache", found, err)
	}
}

// failingAEAD fails Encrypt or Decrypt, as a key management service that
// is down would.
type failingAEAD struct {
	AEAD
	encrypt, decrypt bool
}

var errAEAD = errors.New("key service unavailable")

func (f *failingAEAD) Encrypt(p, ad []byte) ([]byte, error) {
	if f.encrypt {
		return nil, errAEAD
	}
	return f.AEAD.Encrypt(p, ad)
}

func (f *failingAEAD) Decrypt(c, ad []byte) ([]byte, error) {
	if f.decrypt {
		return nil, errAEAD
	}
	return f.AEAD.Decrypt(c, ad)
}

// TestSealedEncryptFails: the Commit fails and the stored session stays.
func TestSealedEncryptFails(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	a := newAEAD(t)
	s := NewWithCleanupInterval(newClient(t), 0, append(fns, withEncryption(a))...)
	if err := s.Commit("token", []byte("before"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	failing := NewWithCleanupInterval(newClient(t), 0, append(fns, withEncryption(&failingAEAD{AEAD: a, encrypt: true}))...)
	err := failing.Commit("token", []byte("after"), time.Now().Add(time.Hour))
	if !errors.Is(err, errAEAD) || !strings.Contains(err.Error(), "encrypt") || !strings.Contains(err.Error(), failing.tableName) {
		t.Fatalf("got %v: expected an encrypt error naming the table", err)
	}
	mustFind(t, s, "token", "before")
}

// TestSealedMigration: plain and compressed items read under Encryption and
// are sealed at their next Commit; RequireEncryption then refuses the
// plain ones.
func TestSealedMigration(t *testing.T) {
	t.Parallel()
	fns := newTable(t, func(o *Options) { o.CompressAbove = 1024 })
	client := newClient(t)
	a := newAEAD(t)
	plain := NewWithCleanupInterval(client, 0, fns...)
	sealed := NewWithCleanupInterval(client, 0, append(fns, withEncryption(a))...)
	var log syncBuffer
	strict := NewWithCleanupInterval(client, 0, append(fns, withEncryption(a), withLogger(&log), func(o *Options) { o.RequireEncryption = true })...)
	small, large := gobSession(t, 200, 1), gobSession(t, 4096, 2)
	expiry := time.Now().Add(time.Hour)
	for token, data := range map[string][]byte{"small": small, "large": large} {
		if err := plain.Commit(token, data, expiry); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := rawItem(t, plain, "large")["data_zstd"]; !ok {
		t.Fatal("expected the large session compressed, unsealed")
	}
	// Every format reads, whatever the options say.
	for token, data := range map[string][]byte{"small": small, "large": large} {
		for _, s := range []*DynamoStore{plain, sealed} {
			if b, found, err := s.Find(token); err != nil || !found || !bytes.Equal(b, data) {
				t.Fatalf("%s: got %d bytes, %v, %v: expected the session", token, len(b), found, err)
			}
		}
		// RequireEncryption refuses it until it is sealed.
		if _, found, err := strict.Find(token); found || err != nil {
			t.Fatalf("%s: got %v, %v: expected an unsealed item refused", token, found, err)
		}
		if err := sealed.Commit(token, data, expiry); err != nil {
			t.Fatal(err)
		}
		if b, found, err := strict.Find(token); err != nil || !found || !bytes.Equal(b, data) {
			t.Fatalf("%s: got %d bytes, %v, %v: expected the sealed session", token, len(b), found, err)
		}
		if b, found, err := plain.Find(token); found || err != nil {
			t.Fatalf("%s: got %d bytes, %v, %v: expected a store without the key to find nothing", token, len(b), found, err)
		}
	}
	assertSealed(t, rawItem(t, plain, "small"), "data_sealed", small)
	assertSealed(t, rawItem(t, plain, "large"), "data_zstd_sealed", large)
	if got := log.String(); !strings.Contains(got, "is not sealed, and Options.RequireEncryption is set") {
		t.Fatalf("got log %q: expected the refused items logged", got)
	}
}

func TestRequireEncryptionWithoutEncryption(t *testing.T) {
	t.Parallel()
	mustPanicInvalid(t, "RequireEncryption", func(o *Options) { o.RequireEncryption = true })
}

// TestSealedTooLarge: the 400 KB check counts the sealed size.
func TestSealedTooLarge(t *testing.T) {
	t.Parallel()
	a := newAEAD(t)
	s := newStore(t, nil, withEncryption(a))
	sealed, err := a.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	overhead := len(sealed) - 1 + 1 // and the sealVersion byte
	expiry := time.Now().Add(time.Hour)
	exp, expMs := sessionitem.ExpiryValues(expiry)
	fits := maxItemBytes - len("session_key") - len("token") - len("data_sealed") -
		len("expires") - numberSize(exp) - len("expires_ms") - numberSize(expMs) - overhead
	big := bytes.Repeat([]byte{'x'}, fits)
	if err := s.Commit("token", big, expiry); err != nil {
		t.Fatalf("got %v: expected a sealed item of exactly 400 KB stored", err)
	}
	if err := s.Commit("token", append(big, 'x'), expiry); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v: expected ErrTooLarge one byte over, sealed", err)
	}
	mustFind(t, s, "token", string(big))
}

// rotatingAEAD is an AEAD in the middle of a key rotation, as a tink-go
// keyset with two keys is: it seals under the new key and opens what
// either key sealed.
type rotatingAEAD struct{ primary, old AEAD }

func (r rotatingAEAD) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return r.primary.Encrypt(plaintext, associatedData)
}

func (r rotatingAEAD) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	if b, err := r.primary.Decrypt(ciphertext, associatedData); err == nil {
		return b, nil
	}
	return r.old.Decrypt(ciphertext, associatedData)
}

// TestKeyRotation rotates keys: sessions written under key 1 read once key
// 2 is primary, new Commits use key 2, Reseal rewrites the old ones, and
// key 1 can then be dropped without losing a session.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	fns := newTable(t)
	client := newClient(t)
	key1, key2 := newAEAD(t), newAEAD(t)
	store1 := NewWithCleanupInterval(client, 0, append(fns, withEncryption(key1))...)
	expiry := time.Now().Add(time.Hour)
	for _, token := range []string{"a", "b"} {
		if err := store1.Commit(token, []byte("old "+token), expiry); err != nil {
			t.Fatal(err)
		}
	}

	// Key 2 added and made primary.
	store2 := NewWithCleanupInterval(client, 0, append(fns, withEncryption(rotatingAEAD{primary: key2, old: key1}))...)
	mustFind(t, store2, "a", "old a")
	if err := store2.Commit("c", []byte("new c"), expiry); err != nil {
		t.Fatal(err)
	}
	// "c" is under key 2: key 1 alone cannot open it.
	mustFind(t, store1, "c", "")
	mustFind(t, store1, "a", "old a")

	// Dropping key 1 now would lose "a" and "b"...
	store3 := NewWithCleanupInterval(client, 0, append(fns, withEncryption(key2))...)
	mustFind(t, store3, "a", "")
	// ...so Reseal them under key 2 first.
	n, err := store2.Reseal(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("got %d, %v: expected 3 sessions resealed", n, err)
	}
	for token, want := range map[string]string{"a": "old a", "b": "old b", "c": "new c"} {
		mustFind(t, store3, token, want)
		if exp, err := sessionitem.ExpiryMillis(rawItem(t, store3, token), "expires"); err != nil || exp != expiry.UnixMilli() {
			t.Fatalf("got expiry %d, %v: expected it kept at %d", exp, err, expiry.UnixMilli())
		}
	}
}

// TestSealedSweepAndOwner: the sweeper and the owner index work on a sealed
// table; the owner comes from the data before it is sealed.
func TestSealedSweepAndOwner(t *testing.T) {
	t.Parallel()
	s := newStoreWith(t, nil, clockAhead, withEncryption(newAEAD(t)), withOwner)
	if err := s.Commit("live", []byte("u1|live"), liveAt()); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("dead", []byte("u1|dead"), expiredAt()); err != nil {
		t.Fatal(err)
	}
	if o, ok := rawItem(t, s, "live")["owner"].(*types.AttributeValueMemberS); !ok || o.Value != "u1" {
		t.Fatalf("got owner %v: expected u1 beside the sealed data", rawItem(t, s, "live")["owner"])
	}
	waitOwnerTokens(t, s, "u1", []string{"live"})
	if n, err := s.DeleteExpired(context.Background()); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected the expired sealed session swept", n, err)
	}
	if n, err := s.DeleteOwner(context.Background(), "u1"); n != 1 || err != nil {
		t.Fatalf("got %d, %v: expected the live sealed session revoked", n, err)
	}
	out, err := newClient(t).Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(s.tableName)})
	if err != nil {
		t.Fatal(err)
	}
	for _, item := range out.Items {
		if !sessionitem.Revoked(item) {
			t.Fatalf("got %v: expected no session left, only the revocation", item)
		}
	}
}

// TestSealedHashTokenInStore: scs with HashTokenInStore over a sealed store
// behind a CachedStore, with the sweeper running: the table holds neither a
// token any client sent nor any session's data.
func TestSealedHashTokenInStore(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	fns := newTable(t, withEncryption(newAEAD(t)), withLogger(&log), func(o *Options) { o.SweepWithTTL = true })
	store := NewWithCleanupInterval(newClient(t), 20*time.Millisecond, fns...)
	t.Cleanup(store.StopCleanup)
	sm := scs.New()
	sm.Store = NewCached(store)
	sm.HashTokenInStore = true
	mux := http.NewServeMux()
	mux.HandleFunc("POST /put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "secret", r.PostFormValue("secret"))
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, sm.GetString(r.Context(), "secret"))
	})
	srv := httptest.NewServer(sm.LoadAndSave(mux))
	t.Cleanup(srv.Close)

	var cookies []string
	for i := range 5 {
		b := newBrowser(t)
		secret := fmt.Sprintf("s3cret-value-%d", i)
		b.do(http.MethodPost, srv.URL+"/put", url.Values{"secret": {secret}})
		if got := b.do(http.MethodGet, srv.URL+"/get", nil); got != secret {
			t.Fatalf("got %q: expected %q back", got, secret)
		}
		cookies = append(cookies, b.cookie(srv))
	}
	log.waitFor(t, "swept expired sessions") // the sweeper ran on the sealed table

	out, err := newClient(t).Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(store.tableName)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) < 5 {
		t.Fatalf("got %d items: expected the 5 sessions", len(out.Items))
	}
	for _, item := range out.Items {
		for name, v := range item {
			var raw []byte
			switch v := v.(type) {
			case *types.AttributeValueMemberS:
				raw = []byte(v.Value)
			case *types.AttributeValueMemberB:
				raw = v.Value
			}
			for _, c := range cookies {
				if bytes.Contains(raw, []byte(c)) {
					t.Fatalf("attribute %q holds a token a client sent", name)
				}
			}
			if bytes.Contains(raw, []byte("s3cret-value")) {
				t.Fatalf("attribute %q holds session data in clear", name)
			}
		}
	}
}

// TestSealedBinding: a writer of the table without the key cannot bend a
// sealed session. Whatever of its expiry, owner or format they change, the
// item no longer opens: it is no session, logged at Warn without key or
// data. An item sealed before the binding (key and format only) still
// opens, and Reseal rewrites it under the binding.
func TestSealedBinding(t *testing.T) {
	t.Parallel()
	const secret = "u1|s3cret-data"
	var logs syncBuffer
	a := newAEAD(t)
	s := newStore(t, nil, withOwner, withEncryption(a), withLogger(&logs), func(o *Options) { o.RequireEncryption = true })
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	yearAhead := time.Now().AddDate(1, 0, 0)
	for _, c := range []struct {
		name   string
		expiry time.Time // of the Commit
		edit   func(item map[string]types.AttributeValue)
	}{
		{"revive-expired", time.Now().Add(-time.Hour), func(item map[string]types.AttributeValue) {
			item["expires"], item["expires_ms"] = n(yearAhead.Unix()), n(yearAhead.UnixMilli())
		}},
		{"extend-live", time.Now().Add(time.Hour), func(item map[string]types.AttributeValue) {
			item["expires"], item["expires_ms"] = n(yearAhead.Unix()), n(yearAhead.UnixMilli())
		}},
		{"extend-millis-only", time.Now().Add(time.Hour), func(item map[string]types.AttributeValue) {
			item["expires_ms"] = n(time.Now().Add(2 * time.Hour).UnixMilli())
		}},
		{"strip-owner", time.Now().Add(time.Hour), func(item map[string]types.AttributeValue) { delete(item, "owner") }},
		{"change-owner", time.Now().Add(time.Hour), func(item map[string]types.AttributeValue) {
			item["owner"] = &types.AttributeValueMemberS{Value: "u2"}
		}},
		{"change-format", time.Now().Add(time.Hour), func(item map[string]types.AttributeValue) {
			item["data_zstd_sealed"] = item["data_sealed"]
			delete(item, "data_sealed")
		}},
		{"drop-version", time.Now().Add(time.Hour), func(item map[string]types.AttributeValue) {
			b := item["data_sealed"].(*types.AttributeValueMemberB)
			item["data_sealed"] = &types.AttributeValueMemberB{Value: b.Value[1:]}
		}},
	} {
		token := "tok-" + c.name
		if err := s.Commit(token, []byte(secret), c.expiry); err != nil {
			t.Fatal(err)
		}
		item := rawItem(t, s, token)
		if c.expiry.After(time.Now()) {
			mustFind(t, s, token, secret)
		}
		c.edit(item)
		putRaw(t, s, item)
		before := logs.String()
		if b, found, err := s.Find(token); found || err != nil {
			t.Fatalf("%s: got %q, %v, %v: expected the edited item to be no session", c.name, b, found, err)
		}
		msg := strings.TrimPrefix(logs.String(), before)
		if !strings.Contains(msg, "level=WARN") || strings.Contains(msg, token) || strings.Contains(msg, "s3cret") {
			t.Fatalf("%s: got log %q: expected a warning without key or data", c.name, msg)
		}
	}

	// An item sealed before the binding opens without RequireEncryption,
	// and Reseal binds it; RequireEncryption refuses such an item, so a
	// copy kept from before cannot come back with another expiry.
	lax := NewWithCleanupInterval(newClient(t), 0, withOwner, withEncryption(a), withLogger(&logs), func(o *Options) { o.TableName = s.tableName })
	legacy, err := a.Encrypt([]byte(secret), associatedData("tok-legacy", false))
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	sec, ms := sessionitem.ExpiryValues(hour)
	putRaw(t, s, map[string]types.AttributeValue{
		"session_key": &types.AttributeValueMemberS{Value: "tok-legacy"},
		"data_sealed": &types.AttributeValueMemberB{Value: legacy},
		"expires":     &types.AttributeValueMemberN{Value: sec},
		"expires_ms":  &types.AttributeValueMemberN{Value: ms},
	})
	legacyItem := rawItem(t, s, "tok-legacy")
	if _, found, err := s.Find("tok-legacy"); found || err != nil {
		t.Fatalf("got %v, %v: expected RequireEncryption to refuse an item sealed before the binding", found, err)
	}
	mustFind(t, lax, "tok-legacy", secret)
	if n, err := lax.Reseal(context.Background()); err != nil || n != 1 {
		t.Fatalf("got %d, %v: expected the legacy item, the one live session that opens, resealed", n, err)
	}
	item := rawItem(t, s, "tok-legacy")
	if b := item["data_sealed"].(*types.AttributeValueMemberB).Value; b[0] != sealVersion {
		t.Fatalf("got first byte %d: expected Reseal to bind the legacy item", b[0])
	}
	mustFind(t, s, "tok-legacy", secret)
	item["expires_ms"] = n(yearAhead.UnixMilli())
	item["expires"] = n(yearAhead.Unix())
	putRaw(t, s, item)
	if _, found, _ := s.Find("tok-legacy"); found {
		t.Fatal("expected the resealed item's expiry bound")
	}
	// The copy kept from before the binding, put back a year ahead and
	// without its owner.
	legacyItem["expires"], legacyItem["expires_ms"] = n(yearAhead.Unix()), n(yearAhead.UnixMilli())
	putRaw(t, s, legacyItem)
	if _, found, err := s.Find("tok-legacy"); found || err != nil {
		t.Fatalf("got %v, %v: expected the legacy copy refused under RequireEncryption", found, err)
	}

	// The limit SECURITY.md states: a writer may put back an older sealed
	// copy of the same session, with its own old expiry, which bounds it.
	if err := s.Commit("tok-restore", []byte("u1|old"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	old := rawItem(t, s, "tok-restore")
	if err := s.Commit("tok-restore", []byte("u1|new"), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	putRaw(t, s, old)
	if _, expiry, found, err := s.FindExpiryCtx(context.Background(), "tok-restore"); err != nil || !found || expiry.After(time.Now().Add(time.Hour)) {
		t.Fatalf("got %v, %v, %v: expected the restored copy served, until its own expiry", expiry, found, err)
	}
}
