package dynamostore

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// Options configures a DynamoStore. New fills in the defaults before it calls
// the caller's option functions, so a function changes only what it sets. A
// string option left empty takes its default.
type Options struct {
	// TableName is the DynamoDB table. The default is "sessions".
	TableName string

	// KeyAttribute is the table's partition key, of type S. It holds
	// KeyPrefix followed by the session token. The default is "session_key".
	KeyAttribute string

	// DataAttribute holds the session data, of type B. The default is "data".
	// Compressed data goes in DataAttribute followed by "_zstd" instead.
	DataAttribute string

	// CompressAbove makes Commit compress session data of at least this many
	// bytes with zstd, when that makes it smaller, saving capacity units
	// and fitting larger sessions under the 400 KB item limit. Find reads
	// compressed and plain items whatever this says. 1024 is a good value
	// (a write unit is 1 KB); zero, the default, never compresses. A
	// compressed session holds at most 4 MiB of data (ErrTooLarge above).
	CompressAbove int

	// ExpiryAttribute holds the session's expiry in whole Unix seconds,
	// rounded up, of type N: make it the table's TTL attribute (CreateTable
	// does). The exact expiry, in Unix milliseconds, goes in
	// ExpiryAttribute followed by "_ms". The default is "expires".
	ExpiryAttribute string

	// KeyPrefix is prepended to every token, so that several applications
	// can share a table, each fenced in by an IAM dynamodb:LeadingKeys
	// condition. A store touches only keys that are its prefix followed by
	// a token (base64url characters), so the prefix must be empty or end
	// with a character a token cannot hold: "app:", not "app". The default
	// is "".
	KeyPrefix string

	// ConsistentRead makes Find and All read with strong consistency, so a
	// session is visible as soon as Commit returns, at twice the read cost of
	// an eventually consistent read. (The reads with which
	// ClearTokenFallback checks what another instance just wrote are
	// strongly consistent whatever it says.) The default is true.
	ConsistentRead bool

	// CleanupInterval is how often the background sweeper deletes expired
	// sessions. Zero or less disables the sweeper. The default is 5 minutes.
	CleanupInterval time.Duration

	// SweepWithTTL makes the background sweeper scan even while the
	// table's TTL (ENABLED or ENABLING on ExpiryAttribute) deletes expired
	// sessions for free. Without it, the default, the sweeper asks
	// DescribeTimeToLive about once an hour and stands down while TTL is
	// on, logging at Info when it stands down and resumes; where the call
	// is refused it sweeps, and logs once at Warn. DeleteExpired always
	// sweeps.
	SweepWithTTL bool

	// SweepLease makes the background sweeper take a lease (one item, one
	// conditional write per instance per interval) before each sweep, so
	// that of the stores sharing the table and KeyPrefix only one sweeps
	// at a time. A crashed holder's lease lapses after CleanupInterval (10
	// seconds at least). DeleteExpired never takes it. The default is true.
	SweepLease bool

	// SweepSegments is how many parallel Scan segments a sweep reads, for
	// large tables where one sequential Scan is too slow. Each segment keeps
	// up to 8 conditional deletes in flight, so more segments also delete
	// faster where DynamoDB's latency, not its capacity, is the limit. It
	// is at most 16 per CPU (runtime.NumCPU): a larger value takes that
	// many. The default is 1; zero or less takes the default.
	SweepSegments int

	// SweepReadRate caps the read capacity units per second a sweep's Scan
	// consumes, as DynamoDB reports them, so that a sweep leaves
	// provisioned capacity to the application. Up to 128 units (one 1 MB
	// page) may be read at once before the cap applies. Zero, the default,
	// means no cap, and so does a negative value.
	SweepReadRate float64

	// SweepGrace is how long past its expiry a session must be before the
	// sweeper deletes it, so that a sweeper whose clock runs ahead does not
	// delete a session another instance still serves: set it to the most
	// your instances' clocks can differ. The default is one minute; zero or
	// less means none.
	SweepGrace time.Duration

	// Owner, when set, tells Commit who owns a session from its data (a
	// user ID, say; ok false for none). Commit stores it in OwnerAttribute,
	// which the index OwnerIndex makes findable: see DeleteOwner and
	// OwnerTokens, and SessionValue for a ready-made Owner. An owner
	// DynamoDB cannot index (empty, not UTF-8, over 2048 bytes) is stored
	// as none and logged at Warn, without its value. The owner is readable
	// in the table: make it an opaque ID, not an email address. The default
	// is nil: no owner is stored.
	Owner func(data []byte) (owner string, ok bool)

	// OwnerAttribute holds a session's owner, of type S, when Owner is set.
	// It must differ from the item's other attributes, the store's own
	// ("revoked_until_ms" and "last_write_ms", when a Commit of a session
	// with an owner last wrote it) and the sweeper lease's ("lease_owner"
	// and "lease_until_ms"). The default is "owner".
	OwnerAttribute string

	// OwnerIndex is the global secondary index on OwnerAttribute, with
	// projection KEYS_ONLY, that DeleteOwner and OwnerTokens query.
	// CreateTable creates it. The default is "owner-index".
	OwnerIndex string

	// Encryption, when set, seals session data before Commit stores it and
	// opens it when Find reads it, bound to its item's key, expiry, owner
	// and format, so that a reader of the table learns nothing and a writer
	// cannot change what a sealed item says. tink-go's tink.AEAD satisfies AEAD,
	// with key rotation by its keyset. Unsealed items still read, and are
	// sealed at their next Commit (Reseal seals them all). The default is
	// nil: data is stored as scs encodes it.
	Encryption AEAD

	// RequireEncryption makes an item whose data is not sealed, or sealed
	// before its expiry and owner were bound, unreadable, so that whoever
	// can write to the table cannot plant a session: set it once Reseal has
	// sealed every item. It needs Encryption. The default is false.
	RequireEncryption bool

	// RevocationPeriod is how long a Delete (and DeleteOwner, and scs's
	// RenewToken and Destroy) stays final: until it ends, a Commit of the
	// deleted token, from a request in flight, a cached copy or another
	// instance, stores nothing and returns nil. Delete leaves a revocation
	// of about 100 bytes, which TTL and the sweeper remove afterwards. Keep
	// it at least scs's SessionManager.Lifetime. The default is 24 hours;
	// zero or less takes the default.
	RevocationPeriod time.Duration

	// HashTokens makes the store hash each token before it uses it as a
	// key, exactly as scs's SessionManager.HashTokenInStore (scs v2.8)
	// does: SHA-256, in base64url without padding. Find, Commit, Delete,
	// CommitNewCtx and every other method that takes a token hash it, so
	// the table holds no usable cookie; what the store hands back as a
	// token (All's keys, OwnerTokens, the tokens DeleteOwnerFunc passes
	// its function) is the key as stored, the hash. A CachedStore in front
	// keys its cache by the hash too. A table written under HashTokens
	// holds exactly the keys HashTokenInStore makes, so a team may later
	// set HashTokenInStore and turn HashTokens off, in a rolling deploy,
	// with nothing lost, once no instance has ClearTokenFallback (items
	// that scs hashes through a store without HashTokens are not marked as
	// hashed, and the fallback would read their stored keys, sent as
	// cookies, as clear tokens). Do not set both: the tokens would be hashed
	// twice. A wrapper around the store in front of a CachedStore must
	// forward Options (TableStore) for the cache to hash its keys too. To
	// turn it on for a table keyed by clear tokens without logging anyone
	// out, see ClearTokenFallback. The default is false.
	HashTokens bool

	// ClearTokenFallback moves a table keyed by clear tokens to HashTokens,
	// which it needs (CheckOptions refuses it alone), without logging
	// anyone out: a Find whose hashed key holds no session (nothing, or an
	// expired or unreadable session; a revocation is final) reads the clear
	// token's key once, and a live session it finds there is moved under
	// the hashed key, with CommitNewCtx's condition, so that of two
	// instances moving it at once one stores it and neither overwrites a
	// Commit or a Delete of the hashed key, and then served. The clear
	// item is replaced by a revocation, if it is still the session moved;
	// if an instance still on clear tokens revoked it meanwhile (a
	// logout), the hashed key is revoked too. A clear item that is expired
	// or a revocation is never moved. Commit writes the hashed key only;
	// Delete revokes both keys.
	//
	// It costs one extra read per Find that misses, while it is on (two
	// reads in all; a hit reads once, as without it); a move costs two
	// conditional writes as well, and a Delete two writes rather than one.
	// ClearTokenStats, and the dynamostore.clear_token_fallback metric,
	// count the moves and the reads that found nothing: once no instance
	// has moved a session for a session lifetime, turn it off in a deploy
	// of its own, keeping HashTokens (and after that, if you like, move to
	// scs's HashTokenInStore: see HashTokens).
	//
	// During the rolling deploy that turns it on, instances still on the
	// old deploy read clear keys only: a session a new instance has moved
	// is not found there, and a logout there does not reach the moved
	// copy. Keep that deploy short, or route each user to one kind of
	// instance while it lasts. A move whose write the SDK sent again after
	// its answer was lost (a timeout) finds its own write, leaves the clear
	// copy until it expires, and is not counted. NewMigrating and Import
	// refuse a store with the fallback: move from another store before or
	// after, not during. The default is false.
	ClearTokenFallback bool

	// MeterProvider makes the store's OpenTelemetry instruments (see the
	// README's Telemetry section). The store asks DynamoDB for consumed
	// capacity only while a provider records dynamostore.capacity. The
	// default is nil: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider

	// Logger receives the sweeper's errors and notes about items that Find,
	// All and OwnerTokens cannot read; none carries a token, an owner or
	// session data. The default, and what nil means, is slog.Default().
	Logger *slog.Logger
}

// AEAD seals and opens session data. tink-go's tink.AEAD satisfies it (a keyset
// handle's primitive, so key rotation is the keyset's), as does any AES-GCM or
// XChaCha20-Poly1305 wrapper with the same two methods.
type AEAD interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
}

// CheckOptions returns an error wrapping ErrInvalidOptions when the options
// that optFns set cannot work, saying which option to change: a KeyPrefix
// that cannot be fenced (see Options.KeyPrefix), attribute names that
// clash with each other or with the store's own, RequireEncryption
// without Encryption, or ClearTokenFallback without HashTokens. New
// panics with the same error; call CheckOptions first where options come
// from configuration, as the command-line tool does with its flags.
func CheckOptions(optFns ...func(*Options)) error {
	return checkOptions(resolveOptions(0, optFns))
}

// checkOptions is CheckOptions for resolved options.
func checkOptions(o Options) error {
	err := sessionitem.CheckPrefix(o.KeyPrefix)
	if err == nil && len(o.KeyPrefix) >= maxKeyBytes {
		err = fmt.Errorf("KeyPrefix is %d bytes, which leaves no room for a token in DynamoDB's %d-byte key", len(o.KeyPrefix), maxKeyBytes)
	}
	if err == nil {
		err = attributeConflict(o)
	}
	if err == nil {
		// Even without Owner: a sealed item binds the attribute, and the
		// owner index and DeleteOwner read it.
		err = ownerConflict(o)
	}
	if err == nil && (math.IsNaN(o.SweepReadRate) || math.IsInf(o.SweepReadRate, 0)) {
		err = fmt.Errorf("SweepReadRate is %v; want a number of read units per second, or 0 for no cap", o.SweepReadRate)
	}
	if err == nil && o.RequireEncryption && o.Encryption == nil {
		err = errors.New("RequireEncryption is set without Encryption, so items would be read and written unsealed; set both, or neither")
	}
	if err == nil && o.ClearTokenFallback && !o.HashTokens {
		err = errors.New("ClearTokenFallback is set without HashTokens, so there is no hashed key to move sessions to; set HashTokens too, or neither")
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	return nil
}

func resolveOptions(interval time.Duration, optFns []func(*Options)) Options {
	o := Options{
		TableName:        sessionitem.DefaultTableName,
		KeyAttribute:     sessionitem.DefaultKeyAttribute,
		DataAttribute:    sessionitem.DefaultDataAttribute,
		ExpiryAttribute:  sessionitem.DefaultExpiryAttribute,
		OwnerAttribute:   sessionitem.DefaultOwnerAttribute,
		OwnerIndex:       sessionitem.DefaultOwnerIndex,
		ConsistentRead:   true,
		CleanupInterval:  interval,
		SweepLease:       true,
		SweepGrace:       sessionitem.DefaultSweepGrace,
		RevocationPeriod: sessionitem.DefaultRevocationPeriod,
		Logger:           slog.Default(),
	}
	for _, fn := range optFns {
		fn(&o)
	}
	o.TableName = cmp.Or(o.TableName, sessionitem.DefaultTableName)
	o.KeyAttribute = cmp.Or(o.KeyAttribute, sessionitem.DefaultKeyAttribute)
	o.DataAttribute = cmp.Or(o.DataAttribute, sessionitem.DefaultDataAttribute)
	o.ExpiryAttribute = cmp.Or(o.ExpiryAttribute, sessionitem.DefaultExpiryAttribute)
	o.OwnerAttribute = cmp.Or(o.OwnerAttribute, sessionitem.DefaultOwnerAttribute)
	o.OwnerIndex = cmp.Or(o.OwnerIndex, sessionitem.DefaultOwnerIndex)
	o.SweepSegments = min(max(o.SweepSegments, 1), sessionitem.MaxSweepSegments())
	if o.RevocationPeriod <= 0 {
		o.RevocationPeriod = sessionitem.DefaultRevocationPeriod
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ownerConflict returns an error when o.OwnerAttribute is the name of
// another attribute of a session item or of the sweeper lease, whose value
// the owner would replace.
func ownerConflict(o Options) error {
	taken := []string{o.KeyAttribute, o.ExpiryAttribute, o.ExpiryAttribute + sessionitem.MillisSuffix, sessionitem.LeaseOwnerAttribute, sessionitem.LeaseUntilAttribute, sessionitem.RevokedAttribute, sessionitem.LastWriteAttribute, sessionitem.HashedKeyAttribute}
	for _, f := range sessionitem.Formats {
		taken = append(taken, f.Attribute(o.DataAttribute))
	}
	for _, attr := range taken {
		if o.OwnerAttribute == attr {
			return fmt.Errorf("owner attribute %q (Options.OwnerAttribute) is also the name of another attribute of a session item or of the sweeper lease; choose another", attr)
		}
	}
	return nil
}

// attributeConflict returns an error when one of the names a session item
// takes from o is that of an attribute the store keeps for its revocations
// or the sweeper lease: every session would then read as something else.
func attributeConflict(o Options) error {
	names := []string{o.KeyAttribute, o.ExpiryAttribute, o.ExpiryAttribute + sessionitem.MillisSuffix}
	for _, f := range sessionitem.Formats {
		names = append(names, f.Attribute(o.DataAttribute))
	}
	for i, name := range names {
		switch name {
		case sessionitem.RevokedAttribute, sessionitem.LastWriteAttribute, sessionitem.HashedKeyAttribute, sessionitem.LeaseOwnerAttribute, sessionitem.LeaseUntilAttribute:
			return fmt.Errorf("attribute %q, which Options.KeyAttribute, DataAttribute or ExpiryAttribute makes, is the store's own for revocations, the time of a session's last write or the sweeper lease; choose another", name)
		}
		if slices.Contains(names[:i], name) {
			return fmt.Errorf("attribute %q is named twice by Options.KeyAttribute, DataAttribute (with its %q and %q forms) and ExpiryAttribute (with its %q form); choose names apart",
				name, sessionitem.ZstdSuffix, sessionitem.SealedSuffix, sessionitem.MillisSuffix)
		}
	}
	return nil
}
