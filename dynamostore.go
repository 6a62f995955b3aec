// Package dynamostore is a session store for github.com/alexedwards/scs/v2
// that keeps sessions in one Amazon DynamoDB table through aws-sdk-go-v2.
//
// Each session is one item: the token (behind an optional key prefix) is the
// partition key, the session data is a binary attribute holding exactly the
// bytes scs encodes (or, with Options.CompressAbove, those bytes compressed
// with zstd; with Options.Encryption, sealed by an AEAD), and the expiry is
// two number attributes: whole Unix seconds,
// rounded up, which is the table's TTL attribute, and the exact expiry in
// Unix milliseconds. A session is live until its expiry, to the millisecond.
// Find is one GetItem, Commit one PutItem and Delete one PutItem, which
// leaves a revocation so that no Commit of the token in flight or from a
// cached copy stores the session again (see Options.RevocationPeriod);
// nothing else runs on the request path.
//
// DynamoDB's TTL deletes expired items lazily, often days late, so the store
// never trusts an item's presence: Find and All compare the expiry with the
// clock and treat an expired item as missing. A background sweeper (see
// DeleteExpired) deletes expired items where the table has no TTL; where it
// has, the sweeper stands down unless Options.SweepWithTTL says otherwise.
//
// Where to start:
//   - New returns the store, with the background sweeper; NewWithCleanupInterval
//     sets the sweeper's interval, or turns it off.
//   - NewCached puts a cache in front of it (or of any CacheableStore),
//     linearizable for each token: in-process and bounded in bytes by
//     default, or shared by several instances through a SharedCache, such
//     as package rediscache's on Redis.
//   - CreateTable makes the table, with its owner index and TTL, or adds what
//     an existing table lacks.
//   - DeleteExpired sweeps on your own schedule; DeleteOwner logs a user out
//     everywhere; Reseal seals every session under Options.Encryption.
//   - The command-line tool, github.com/dynamostore/dynamostore/cmd/dynamostore,
//     does the same from a shell: create-table, check, delete-expired, stats,
//     sessions and revoke.
//
// A DynamoStore is safe for concurrent use by multiple goroutines.
package dynamostore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/time/rate"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// Client is the part of the DynamoDB API the store calls. *dynamodb.Client
// satisfies it, and so does a DAX client or any wrapper with the same method
// signatures.
type Client interface {
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, params *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, params *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

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

	// now is the store's clock, time.Now unless a test moves it.
	now func() time.Time

	// ttlRecheck is how often the sweeper asks for the table's TTL status:
	// an hour, unless a test shortens it.
	ttlRecheck time.Duration
}

// DynamoDB's limits, from its documentation.
const (
	maxItemBytes = 400 * 1024 // item size, attribute names included
	maxKeyBytes  = 2048       // partition key value
)

// AEAD seals and opens session data. tink-go's tink.AEAD satisfies it (a keyset
// handle's primitive, so key rotation is the keyset's), as does any AES-GCM or
// XChaCha20-Poly1305 wrapper with the same two methods.
type AEAD interface {
	Encrypt(plaintext, associatedData []byte) ([]byte, error)
	Decrypt(ciphertext, associatedData []byte) ([]byte, error)
}

// ErrTooLarge is returned, wrapped, by Commit when the session data cannot fit
// in DynamoDB's 400 KB item limit together with the key, the expiry and the
// attribute names. Test for it with errors.Is. Nothing is written, so the
// session's previous data stays as it was.
var ErrTooLarge = errors.New("session too large for a DynamoDB item (400 KB limit)")

// maxDecodedBytes bounds what a compressed item may expand to, so a corrupt
// or hostile item cannot exhaust memory. Commit refuses to write more than
// this.
const maxDecodedBytes = sessionitem.MaxDecodedBytes

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

// DynamoStore is an scs session store on one DynamoDB table. Create it with
// New or NewWithCleanupInterval. It is safe for concurrent use.
type DynamoStore struct {
	client Client
	logger *slog.Logger

	// Copies of the options, kept as the pointers and strings that every
	// request needs, so a request allocates none of them.
	table        *string
	tableName    string
	keyAttr      string
	dataAttr     string
	dataAttrs    [4]string // by format: see formatIndex
	expiryAttr   string
	expiryMsAttr string // the exact expiry, in Unix milliseconds
	compress     int    // CompressAbove; 0 for never
	prefix       string
	consistent   *bool
	aead         AEAD          // Options.Encryption
	requireSeal  bool          // Options.RequireEncryption, with Encryption
	revokeFor    time.Duration // Options.RevocationPeriod

	// unreadable limits the warnings about items that cannot be read.
	unreadable rate.Sometimes
	metrics    *storeMetrics

	ownerOf     func([]byte) (string, bool) // Options.Owner
	ownerAttr   string
	ownerIndex  *string
	badOwnerLog rate.Sometimes // Warns of owners DynamoDB cannot index

	// names are the names of sessionitem's rules: which items are this
	// store's sessions, and which have expired.
	names sessionitem.Names

	now func() time.Time

	sweepLease  bool
	sweepTTL    bool // Options.SweepWithTTL
	ttlRecheck  time.Duration
	segments    int
	readRate    float64
	grace       time.Duration
	interval    time.Duration
	leaseFor    time.Duration // the sweeper lease's term: CleanupInterval, and at least minLease
	leaseHolder string        // this store's name on the sweeper lease
	leaseKey    string        // KeyPrefix + leaseToken
	stopSweeper context.CancelFunc
	sweeperDone chan struct{}
}

var (
	_ scs.Store            = (*DynamoStore)(nil)
	_ scs.CtxStore         = (*DynamoStore)(nil)
	_ scs.IterableStore    = (*DynamoStore)(nil)
	_ scs.IterableCtxStore = (*DynamoStore)(nil)
)

// New returns a DynamoStore that uses client, with a background sweeper that
// deletes expired sessions every 5 minutes. Option functions change the
// defaults described at Options. Call StopCleanup to end the sweeper.
//
// New panics, with a message saying what to change, when client is nil or
// the options cannot work (CheckOptions returns the same error without
// panicking), as http.ServeMux does for a bad pattern: no request could
// recover from either.
func New(client Client, optFns ...func(*Options)) *DynamoStore {
	return NewWithCleanupInterval(client, 5*time.Minute, optFns...)
}

// NewWithCleanupInterval is like New with the sweeper running every interval;
// zero disables it. The option functions run after interval is set, so they
// may change it again. It panics as New does.
func NewWithCleanupInterval(client Client, interval time.Duration, optFns ...func(*Options)) *DynamoStore {
	if client == nil {
		panic("dynamostore: New: the Client is nil; pass a *dynamodb.Client, such as dynamodb.NewFromConfig(cfg)")
	}
	o := resolveOptions(interval, optFns)
	if err := checkOptions(o); err != nil {
		panic("dynamostore: New: " + err.Error())
	}
	consistent := o.ConsistentRead
	s := &DynamoStore{
		client:       client,
		logger:       o.Logger,
		table:        &o.TableName,
		tableName:    o.TableName,
		keyAttr:      o.KeyAttribute,
		dataAttr:     o.DataAttribute,
		expiryAttr:   o.ExpiryAttribute,
		expiryMsAttr: o.ExpiryAttribute + sessionitem.MillisSuffix,
		compress:     max(o.CompressAbove, 0),
		prefix:       o.KeyPrefix,
		consistent:   &consistent,
		aead:         o.Encryption,
		requireSeal:  o.RequireEncryption && o.Encryption != nil,
		revokeFor:    o.RevocationPeriod,
		unreadable:   rate.Sometimes{First: 10, Interval: time.Minute},
		metrics:      newStoreMetrics(o.MeterProvider, o.TableName),
		ownerOf:      o.Owner,
		ownerAttr:    o.OwnerAttribute,
		ownerIndex:   &o.OwnerIndex,
		badOwnerLog:  rate.Sometimes{First: 1, Interval: 10 * time.Minute},
		now:          o.now,
		sweepLease:   o.SweepLease,
		sweepTTL:     o.SweepWithTTL,
		ttlRecheck:   o.ttlRecheck,
		segments:     o.SweepSegments,
		readRate:     o.SweepReadRate,
		grace:        max(o.SweepGrace, 0),
		interval:     o.CleanupInterval,
		leaseFor:     max(o.CleanupInterval, minLease),
		leaseHolder:  newLeaseHolder(),
		leaseKey:     o.KeyPrefix + leaseToken,

		names: sessionitem.Names{Prefix: o.KeyPrefix, Key: o.KeyAttribute, Data: o.DataAttribute, Expiry: o.ExpiryAttribute},
	}
	for i, f := range sessionitem.Formats {
		s.dataAttrs[i] = f.Attribute(o.DataAttribute)
	}
	if o.CleanupInterval > 0 {
		s.startCleanup()
	}
	return s
}

// ErrTableNotFound is wrapped, beside the SDK's
// *types.ResourceNotFoundException, by the error of any operation on a table
// that does not exist.
var ErrTableNotFound = errors.New("the table does not exist")

// ErrIndexNotFound is wrapped by the error of DeleteOwner and OwnerTokens
// when the table has no Options.OwnerIndex.
var ErrIndexNotFound = errors.New("the table has no such index")

// ErrClientMethod is wrapped by the error of an operation that needs a
// method the store's Client lacks: Query for DeleteOwner and OwnerTokens,
// BatchGetItem for OwnerTokens.
var ErrClientMethod = errors.New("the Client lacks a method the operation needs")

// ErrInvalidOptions is wrapped by the error CheckOptions returns, and by
// the message of New's panic, when options cannot work.
var ErrInvalidOptions = errors.New("invalid options")

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
		now:              time.Now,
		ttlRecheck:       time.Hour,
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

// Find returns the data for a session token. If the token is not found, is
// expired, or is one DynamoDB cannot hold (empty, not valid UTF-8, or too
// long), found is false and err is nil. So it is when the item cannot be
// read (corrupt, tampered with, sealed with a key Options.Encryption does
// not have, or not sealed under RequireEncryption), which is logged at
// Warn: an error would make scs answer every request with that cookie with
// a 500 until it expired. It calls FindCtx with context.Background().
func (s *DynamoStore) Find(token string) (b []byte, found bool, err error) {
	return s.FindCtx(context.Background(), token)
}

// FindCtx is like Find with a context for the GetItem request.
func (s *DynamoStore) FindCtx(ctx context.Context, token string) (b []byte, found bool, err error) {
	b, _, found, err = s.find(ctx, token)
	return b, found, err
}

// FindExpiryCtx is FindCtx that also returns when the session expires, to
// the millisecond, as Commit stored it. It makes DynamoStore a
// CacheableStore, so that a CachedStore never keeps a copy past it.
func (s *DynamoStore) FindExpiryCtx(ctx context.Context, token string) (b []byte, expiry time.Time, found bool, err error) {
	return s.find(ctx, token)
}

// find is FindExpiryCtx.
func (s *DynamoStore) find(ctx context.Context, token string) (data []byte, expiry time.Time, found bool, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opFind, start, err, found) }(time.Now())
	key, ok := s.key(token)
	if !ok {
		return nil, time.Time{}, false, nil
	}
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:              s.table,
		Key:                    map[string]types.AttributeValue{s.keyAttr: &types.AttributeValueMemberS{Value: key}},
		ConsistentRead:         s.consistent,
		ReturnConsumedCapacity: s.metrics.capacityRequest(ctx),
	})
	if err != nil {
		return nil, time.Time{}, false, s.opError("find", err)
	}
	s.metrics.consumed(ctx, opFind, kindRead, out.ConsumedCapacity)
	if out.Item == nil || sessionitem.Revoked(out.Item) {
		return nil, time.Time{}, false, nil
	}
	data, ms, derr := s.decode(out.Item)
	if derr != nil {
		// No session, not an error: scs turns a Find error into a 500 for
		// every request with this cookie until it expires.
		s.logUnreadable("find", derr)
		return nil, time.Time{}, false, nil
	}
	if sessionitem.Expired(ms, s.now()) {
		return nil, time.Time{}, false, nil
	}
	return data, time.UnixMilli(ms), true, nil
}

// Commit adds the session token and data to the store with the given expiry,
// overwriting any data and expiry it had. An expiry in the past is accepted
// and leaves the session not found. It calls CommitCtx with
// context.Background().
func (s *DynamoStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// CommitCtx is like Commit with a context for the PutItem request. It returns
// an error wrapping ErrTooLarge, before any request, when the item would
// exceed DynamoDB's 400 KB limit, and an error when the token is empty, not
// valid UTF-8 or too long for a DynamoDB key. A Commit of a token deleted
// less than Options.RevocationPeriod ago stores nothing and returns nil.
func (s *DynamoStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	_, err := s.CommitStoredCtx(ctx, token, b, expiry)
	return err
}

// CommitStoredCtx is CommitCtx that also reports whether it stored the
// session: stored is false, and err nil, when the token was deleted less
// than Options.RevocationPeriod ago. It makes DynamoStore a CacheableStore,
// so that a CachedStore keeps no copy of a revoked session.
func (s *DynamoStore) CommitStoredCtx(ctx context.Context, token string, b []byte, expiry time.Time) (stored bool, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opCommit, start, err, true) }(time.Now())
	key, ok := s.key(token)
	if !ok {
		return false, fmt.Errorf("dynamostore: commit in table %q: token is not one or more base64url characters, as scs's are, or is longer than DynamoDB's %d-byte key limit", s.tableName, maxKeyBytes)
	}
	err = s.commit(ctx, opCommit, key, b, expiry, nil, nil)
	var condFailed *types.ConditionalCheckFailedException
	if errors.As(err, &condFailed) {
		return false, nil // revoked
	}
	return err == nil, err
}

// storedOwner is a session's owner as its item holds it, which Reseal
// keeps whatever the store's Owner option says.
type storedOwner struct {
	owner string
	ok    bool
}

// commit writes the session with key, data b and expiry, in one PutItem
// for op. The PutItem's condition is cond's when cond is not nil, and
// otherwise that the token is not revoked; a failed condition is returned
// as the SDK's *types.ConditionalCheckFailedException, wrapped. The owner
// is keep's when keep is not nil, and otherwise Options.Owner's.
func (s *DynamoStore) commit(ctx context.Context, operation operation, key string, b []byte, expiry time.Time, cond *dynamodb.PutItemInput, keep *storedOwner) error {
	op := operation.String()
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
			return fmt.Errorf("dynamostore: %s in table %q: %d bytes of data exceed the %d-byte limit for compressed sessions: %w", op, s.tableName, len(b), maxDecodedBytes, ErrTooLarge)
		}
		if z := compress(b); z != nil {
			format.Compressed, stored = true, z
		}
	}
	owner, hasOwner := s.owner(b)
	if keep != nil {
		owner, hasOwner = keep.owner, keep.ok
	}
	if s.aead != nil {
		ms, _ := strconv.ParseInt(expMs, 10, 64)
		sealed, err := s.aead.Encrypt(stored, sealBinding(key, format.Compressed, ms, owner, hasOwner))
		if err != nil {
			return s.opError(op+": encrypt", err)
		}
		format.Sealed, stored = true, append([]byte{sealVersion}, sealed...)
	}
	attr := s.dataAttrs[formatIndex(format)]
	size := s.itemSize(key, attr, len(stored), exp, expMs)
	if hasOwner {
		size += len(s.ownerAttr) + len(owner)
	}
	if size > maxItemBytes {
		return fmt.Errorf("dynamostore: %s in table %q: %d bytes of data (%d stored) make a %d-byte item: %w", op, s.tableName, len(b), len(stored), size, ErrTooLarge)
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
		item[s.ownerAttr] = &types.AttributeValueMemberS{Value: owner}
	}
	input := &dynamodb.PutItemInput{TableName: s.table, Item: item, ReturnConsumedCapacity: s.metrics.capacityRequest(ctx)}
	if cond != nil {
		input.ConditionExpression = cond.ConditionExpression
		input.ExpressionAttributeNames = cond.ExpressionAttributeNames
		input.ExpressionAttributeValues = cond.ExpressionAttributeValues
	} else {
		// Not revoked, or the revocation is over. The condition costs
		// nothing: a PutItem is billed by item size alone.
		input.ConditionExpression = &notRevoked
		input.ExpressionAttributeNames = revokedName
		input.ExpressionAttributeValues = map[string]types.AttributeValue{
			":now": &types.AttributeValueMemberN{Value: strconv.FormatInt(s.now().UnixMilli(), 10)},
		}
	}
	out, err := s.client.PutItem(ctx, input)
	if err != nil {
		return s.opError(op, err)
	}
	s.metrics.consumed(ctx, operation, kindWrite, out.ConsumedCapacity)
	return nil
}

// Delete removes the session token and its data from the store, for good:
// until Options.RevocationPeriod has passed, no Commit of the token stores
// it again. Deleting a token that does not exist revokes it all the same;
// an empty token does nothing. It calls DeleteCtx with
// context.Background().
func (s *DynamoStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// DeleteCtx is like Delete with a context for the request. The request is
// one PutItem that replaces the session's item with a revocation (see
// Options.RevocationPeriod), billed as a DeleteItem of the session would
// be: one write unit per KB of the larger of the two items.
func (s *DynamoStore) DeleteCtx(ctx context.Context, token string) (err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opDelete, start, err, true) }(time.Now())
	key, ok := s.key(token)
	if !ok {
		return nil
	}
	out, err := s.client.PutItem(ctx, s.revocation(ctx, key, nil))
	if err != nil {
		return s.opError("delete", err)
	}
	s.metrics.consumed(ctx, opDelete, kindWrite, out.ConsumedCapacity)
	return nil
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

// All returns the data of every unexpired session under this store's
// KeyPrefix, keyed by token without the prefix. With no sessions it returns an
// empty, non-nil map. It reads the whole table with Scan, page by page, so it
// costs read capacity for every item in the table; items that cannot be
// decoded are skipped and logged. It calls AllCtx with context.Background().
func (s *DynamoStore) All() (map[string][]byte, error) {
	return s.AllCtx(context.Background())
}

// AllCtx is like All with a context for the Scan requests.
func (s *DynamoStore) AllCtx(ctx context.Context) (sessions map[string][]byte, err error) {
	defer func(start time.Time) { s.metrics.done(ctx, opAll, start, err, true) }(time.Now())
	sessions = make(map[string][]byte)
	err = s.liveSessions(ctx, opAll, s.now(), func(key string, _ map[string]types.AttributeValue, data []byte, _ int64) {
		sessions[key[len(s.prefix):]] = data
	})
	if err != nil {
		return nil, err
	}
	return sessions, nil
}

// liveSessions scans the table page by page, with ConsistentRead, and
// calls fn with the key, the item, the data and the expiry of every session
// under this store's KeyPrefix that is unexpired at now; items it cannot
// read are logged and skipped. The Scan is billed for every item in the
// table.
func (s *DynamoStore) liveSessions(ctx context.Context, op operation, now time.Time, fn func(key string, item map[string]types.AttributeValue, data []byte, expiry int64)) error {
	// The filter only saves transfer: a Scan is billed for every item it
	// reads. It drops the expired sessions and revocations; the rest are
	// classified below.
	filter, names, values := sessionitem.ExpiredCondition(s.names, now)
	filter = "NOT (" + filter + ")"
	p := dynamodb.NewScanPaginator(s.client, &dynamodb.ScanInput{
		TableName:                 s.table,
		ConsistentRead:            s.consistent,
		FilterExpression:          &filter,
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ReturnConsumedCapacity:    s.metrics.capacityRequest(ctx),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.opError(op.String(), err)
		}
		s.metrics.consumed(ctx, op, kindRead, page.ConsumedCapacity)
		for _, item := range page.Items {
			if sessionitem.Classify(item, s.names) != sessionitem.Session {
				continue // a revocation, or not this store's
			}
			data, expiry, err := s.decode(item)
			if err != nil {
				s.logUnreadable(op.String(), err)
				continue
			}
			if !sessionitem.Expired(expiry, now) {
				fn(item[s.keyAttr].(*types.AttributeValueMemberS).Value, item, data, expiry)
			}
		}
	}
	return nil
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

// sealVersion is the first byte of data sealed with sealBinding's
// associated data; the AEAD's ciphertext follows it. Data sealed before
// it, with associatedData, has no such byte.
const sealVersion byte = 2

// sealBinding is the associated data of data sealed now: everything the
// store decides by, so that a table writer who changes any of it gets an
// item that does not open. It is sealVersion, 'z' or 'p' for compressed or
// plain, the exact expiry in Unix milliseconds (8 bytes, big-endian), 1 and
// the owner's length and bytes or 0 for no owner, and the key as stored.
func sealBinding(key string, compressed bool, expiryMs int64, owner string, hasOwner bool) []byte {
	ad := make([]byte, 0, 2+8+1+binary.MaxVarintLen64+len(owner)+len(key))
	ad = append(ad, sealVersion, 'p')
	if compressed {
		ad[1] = 'z'
	}
	ad = binary.BigEndian.AppendUint64(ad, uint64(expiryMs))
	if hasOwner {
		ad = append(ad, 1)
		ad = binary.AppendUvarint(ad, uint64(len(owner)))
		ad = append(ad, owner...)
	} else {
		ad = append(ad, 0)
	}
	return append(ad, key...)
}

// associatedData is the associated data of data sealed before sealVersion:
// one byte, 'z' or 'p', then the key. Such items still open, so an upgrade
// loses no session; Reseal rewrites them under sealBinding.
func associatedData(key string, compressed bool) []byte {
	ad := make([]byte, 0, 1+len(key))
	if compressed {
		ad = append(ad, 'z')
	} else {
		ad = append(ad, 'p')
	}
	return append(ad, key...)
}

// open returns the data sealed in item, whose key is key: bound, by
// sealBinding, to the item's expiry (by sessionitem.ExpiryMillis), owner
// and format as they are now, or, for data sealed before sealVersion, to
// its key and format alone, which RequireEncryption refuses.
func (s *DynamoStore) open(item map[string]types.AttributeValue, key string, sealed []byte, compressed bool) ([]byte, error) {
	if len(sealed) > 0 && sealed[0] == sealVersion {
		expiry, err := sessionitem.ExpiryMillis(item, s.expiryAttr)
		if err != nil {
			return nil, err
		}
		owner, hasOwner := item[s.ownerAttr].(*types.AttributeValueMemberS)
		var o string
		if hasOwner {
			o = owner.Value
		}
		if data, err := s.aead.Decrypt(sealed[1:], sealBinding(key, compressed, expiry, o, hasOwner)); err == nil {
			return data, nil
		}
		// Data sealed before sealVersion may begin with the same byte.
	}
	if s.requireSeal {
		// Bound to its key alone, so a writer could change its expiry and
		// owner: RequireEncryption refuses it, once Reseal has bound the
		// sessions that were live.
		return nil, errors.New("sealed before its expiry and owner were bound")
	}
	return s.aead.Decrypt(sealed, associatedData(key, compressed))
}

// logUnreadable warns of an item that op could not read: its error names
// the attribute, never the key or the data. The first ten warnings of a
// store are logged, then one a minute.
func (s *DynamoStore) logUnreadable(op string, err error) {
	s.unreadable.Do(func() {
		s.logger.Warn("dynamostore: "+op+": an item that cannot be read is no session; skipped", "table", s.tableName, "error", err)
	})
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

// opError wraps err from a DynamoDB request with the operation and the table,
// and says what to do when the table does not exist.
func (s *DynamoStore) opError(op string, err error) error {
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		return fmt.Errorf("dynamostore: %s in table %q: %w; create it with dynamostore.CreateTable or `dynamostore create-table`: %w", op, s.tableName, ErrTableNotFound, err)
	}
	return fmt.Errorf("dynamostore: %s in table %q: %w", op, s.tableName, err)
}
