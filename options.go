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
	// bytes with zstd, when that makes it smaller, to save write and read
	// capacity units and fit larger sessions under the 400 KB item limit.
	// Compressed data is stored in its own attribute (DataAttribute + "_zstd"),
	// which marks its format: Find reads both kinds whatever this option
	// says, so turning it on or off needs no migration. Versions before this
	// option cannot read compressed items. Zero, the default, never
	// compresses, nor does a negative value; 1024 is a good value, since
	// a write unit is 1 KB. Compressed sessions hold at most 4 MiB of data,
	// so that a planted item costs a Find a few MB at most; Commit returns
	// ErrTooLarge above it.
	CompressAbove int

	// ExpiryAttribute holds the session's expiry in whole Unix seconds,
	// rounded up, of type N: the format DynamoDB's TTL documents, so make it
	// the table's TTL attribute (CreateTable does); TTL never deletes a
	// session before its expiry. The exact expiry, in Unix milliseconds,
	// goes in ExpiryAttribute followed by "_ms". An item without that
	// attribute (written by a version before it) expires at the start of
	// its ExpiryAttribute's second. The default is "expires".
	ExpiryAttribute string

	// KeyPrefix is prepended to every token, so that several applications can
	// share a table and an IAM policy's dynamodb:LeadingKeys condition can
	// fence each one in. It is a fence: a store reads, counts, rewrites and
	// deletes only keys that are its prefix followed by a token (one or more
	// base64url characters, as scs's tokens are), so it must be empty or
	// end with a character a token cannot hold, such as ':' ("app:", not
	// "app", whose keys "app2:..." would share). New panics on one that
	// cannot be fenced. The default is "".
	KeyPrefix string

	// ConsistentRead makes Find and All read with strong consistency, so a
	// session is visible as soon as Commit returns, at twice the read cost of
	// an eventually consistent read. The default is true.
	ConsistentRead bool

	// CleanupInterval is how often the background sweeper deletes expired
	// sessions. Zero or less disables the sweeper. The default is 5 minutes.
	CleanupInterval time.Duration

	// SweepWithTTL makes the background sweeper scan even where the table's
	// TTL already deletes expired sessions. Without it, the default, the
	// sweeper asks DynamoDB for the table's TTL status (DescribeTimeToLive,
	// which costs no capacity) when it starts and about once an hour, and
	// stands down while TTL is ENABLED or ENABLING on ExpiryAttribute: TTL
	// deletes expired items for free, usually within a few days, and Find
	// never serves an expired session meanwhile, so a sweep's Scan (half a
	// read unit per 4 KB of the whole table) would buy only the storage of
	// those items. It logs at Info when it stands down and when it resumes.
	// It sweeps as before where TTL is off, where the client has no
	// DescribeTimeToLive method (a DAX client, say), and where DynamoDB
	// refuses the call, which it logs once at Warn: grant the sweeper's role
	// dynamodb:DescribeTimeToLive. DeleteExpired always sweeps.
	SweepWithTTL bool

	// SweepLease makes the background sweeper take a lease before each
	// sweep, so that of all the stores sharing the table and KeyPrefix
	// (one per application instance, say) only one sweeps per
	// CleanupInterval. The lease is one item in the table, written with a
	// conditional PutItem (one write unit per instance per interval); a
	// stopped holder releases it and a crashed holder's lease lapses after
	// CleanupInterval (10 seconds at least). The holder renews it during a
	// long sweep, so two sweeps never overlap. DeleteExpired itself never
	// takes the lease. The default is true.
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
	// sweeper deletes it. Find treats a session as gone the moment it
	// expires by the reading instance's clock; the grace keeps a sweeper
	// whose clock runs ahead of another instance's by up to SweepGrace from
	// deleting a session that instance still serves. Set it to the most
	// your instances' clocks can differ. The default is one minute; zero or
	// a negative value means none.
	SweepGrace time.Duration

	// Owner, when set, tells Commit who owns a session from its data (a user ID, say);
	// ok false means no owner (a logged-out session). Commit stores the owner in
	// OwnerAttribute, and the sparse global secondary index OwnerIndex finds a user's
	// sessions with a Query: see DeleteOwner and OwnerTokens. SessionValue
	// makes one from a key of the session's data. An owner DynamoDB cannot
	// index (empty, not valid UTF-8, or over 2048 bytes) is stored as no
	// owner and logged at Warn, without its value, at most once every 10
	// minutes. The owner stays readable in the item and the index, so make
	// it an opaque user ID rather than an email address. The default is
	// nil: no owner is stored.
	Owner func(data []byte) (owner string, ok bool)

	// OwnerAttribute holds a session's owner, of type S, when Owner is set.
	// It must differ from the item's other attributes and the sweeper
	// lease's ("lease_owner" and "lease_until_ms"). The default is "owner".
	OwnerAttribute string

	// OwnerIndex is the global secondary index on OwnerAttribute, with
	// projection KEYS_ONLY, that DeleteOwner and OwnerTokens query.
	// CreateTable creates it. The default is "owner-index".
	OwnerIndex string

	// Encryption, when set, seals session data before Commit stores it and
	// opens it when Find reads it, so that a reader of the table (a backup,
	// an export, a role that may Scan) learns neither the data nor, with
	// scs's HashTokenInStore, a usable token. The associated data binds
	// each ciphertext to its item's key (KeyPrefix and token as stored),
	// not to the table, so a restored backup still opens; a ciphertext
	// copied onto another session's key does not. Data is compressed
	// (CompressAbove) before it is sealed. Sealed data goes in
	// DataAttribute followed by "_sealed" (or "_zstd_sealed"), so items
	// written before Encryption was set still read, and are sealed at
	// their next Commit; Reseal seals them all at once. tink-go's tink.AEAD
	// satisfies AEAD, with key rotation by its keyset. The default is nil:
	// data is stored as scs encodes it.
	Encryption AEAD

	// RequireEncryption makes an item whose data is not sealed unreadable,
	// as a corrupt one is: for when every item has been sealed (see
	// Reseal), so that whoever can write to the table cannot plant a
	// session. Without Encryption it has no effect, and New logs that at
	// Error. The default is false.
	RequireEncryption bool

	// RevocationPeriod is how long a Delete (and DeleteOwner, and the Delete
	// inside scs's RenewToken and Destroy) stays final: until it ends, no
	// Commit of the deleted token stores the session again, whether it
	// comes from a request that loaded the session before the Delete, from
	// a cached copy, or from another instance. Such a Commit returns nil,
	// since the session is gone and an error would answer the logged-out
	// request with a 500. Delete leaves a revocation in the session's item
	// to do it: the key and two numbers, about 100 bytes, which DynamoDB's
	// TTL and the sweeper remove once the period is over, and which Find,
	// All, the sweeper's counts and the tool never count as a session.
	//
	// After the period a Commit of the token stores it again. scs never
	// commits a session past its SessionManager.Lifetime, so with a period
	// at least as long as the Lifetime such a Commit stores a session that
	// has already expired, and a deleted session never comes back. The
	// default, 24 hours, is scs's default Lifetime; zero or less takes the
	// default.
	RevocationPeriod time.Duration

	// MeterProvider makes the store's OpenTelemetry instruments (see the
	// README's Telemetry section): calls, their duration and outcome, the
	// capacity units DynamoDB reports, and the sweeper's work. The store
	// asks DynamoDB for the capacity each request consumed only while a
	// provider records dynamostore.capacity (a View with a drop
	// aggregation stops it). A failed conditional write (a sweep's delete of
	// a session committed again, the lease taken by another store)
	// consumes capacity that the SDK's error does not report, so it is not
	// counted. The default is nil: otel.GetMeterProvider(), a no-op until
	// the application installs a provider.
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
// clash with each other or with the store's own, or RequireEncryption
// without Encryption. New panics with the same error; call CheckOptions
// first where options come from configuration, as the command-line tool
// does with its flags.
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
	taken := []string{o.KeyAttribute, o.ExpiryAttribute, o.ExpiryAttribute + sessionitem.MillisSuffix, leaseOwnerAttr, leaseUntilAttr, sessionitem.RevokedAttribute}
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
		case sessionitem.RevokedAttribute, leaseOwnerAttr, leaseUntilAttr:
			return fmt.Errorf("attribute %q, which Options.KeyAttribute, DataAttribute or ExpiryAttribute makes, is the store's own for revocations or the sweeper lease; choose another", name)
		}
		if slices.Contains(names[:i], name) {
			return fmt.Errorf("attribute %q is named twice by Options.KeyAttribute, DataAttribute (with its %q and %q forms) and ExpiryAttribute (with its %q form); choose names apart",
				name, sessionitem.ZstdSuffix, sessionitem.SealedSuffix, sessionitem.MillisSuffix)
		}
	}
	return nil
}
