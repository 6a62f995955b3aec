package dynamostore_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.opentelemetry.io/otel/metric"

	"github.com/dynamostore/dynamostore"
)

// The exported surface, as users' code is written against it: every name
// and signature below must keep compiling (CONTRIBUTING.md: add beside,
// deprecate, never rename or move). A change that breaks one of these lines
// breaks users' builds; it belongs in a new major version, not here.
var (
	_ func(dynamostore.Client, ...func(*dynamostore.Options)) *dynamostore.DynamoStore                = dynamostore.New
	_ func(dynamostore.Client, time.Duration, ...func(*dynamostore.Options)) *dynamostore.DynamoStore = dynamostore.NewWithCleanupInterval
	_ func(scs.Store, ...func(*dynamostore.CacheOptions)) *dynamostore.CachedStore                    = dynamostore.NewCached
	_ func(context.Context, dynamostore.CreateTableAPIClient, ...func(*dynamostore.Options)) error    = dynamostore.CreateTable
	_ func(...func(*dynamostore.Options)) error                                                       = dynamostore.CheckOptions
	_ func(scs.Codec, string) func([]byte) (string, bool)                                             = dynamostore.SessionValue

	// CreateTable took a *dynamodb.Client until it took CreateTableAPIClient:
	// calls with one compile still.
	_ = func(ctx context.Context, c *dynamodb.Client) error { return dynamostore.CreateTable(ctx, c) }

	_ error = dynamostore.ErrTooLarge
	_ error = dynamostore.ErrInvalidOptions
	_ error = dynamostore.ErrTableNotFound
	_ error = dynamostore.ErrIndexNotFound
	_ error = dynamostore.ErrClientMethod

	// DynamoStore's methods.
	_ func(*dynamostore.DynamoStore, string) ([]byte, bool, error)                                             = (*dynamostore.DynamoStore).Find
	_ func(*dynamostore.DynamoStore, context.Context, string) ([]byte, bool, error)                            = (*dynamostore.DynamoStore).FindCtx
	_ func(*dynamostore.DynamoStore, context.Context, string) ([]byte, time.Time, bool, error)                 = (*dynamostore.DynamoStore).FindExpiryCtx
	_ func(*dynamostore.DynamoStore, string, []byte, time.Time) error                                          = (*dynamostore.DynamoStore).Commit
	_ func(*dynamostore.DynamoStore, context.Context, string, []byte, time.Time) error                         = (*dynamostore.DynamoStore).CommitCtx
	_ func(*dynamostore.DynamoStore, context.Context, string, []byte, time.Time) (bool, error)                 = (*dynamostore.DynamoStore).CommitStoredCtx
	_ func(*dynamostore.DynamoStore, string) error                                                             = (*dynamostore.DynamoStore).Delete
	_ func(*dynamostore.DynamoStore, context.Context, string) error                                            = (*dynamostore.DynamoStore).DeleteCtx
	_ func(*dynamostore.DynamoStore) (map[string][]byte, error)                                                = (*dynamostore.DynamoStore).All
	_ func(*dynamostore.DynamoStore, context.Context) (map[string][]byte, error)                               = (*dynamostore.DynamoStore).AllCtx
	_ func(*dynamostore.DynamoStore, context.Context) (int, error)                                             = (*dynamostore.DynamoStore).DeleteExpired
	_ func(*dynamostore.DynamoStore, context.Context, string) (int, error)                                     = (*dynamostore.DynamoStore).DeleteOwner
	_ func(*dynamostore.DynamoStore, context.Context, string) ([]string, error)                                = (*dynamostore.DynamoStore).OwnerTokens
	_ func(*dynamostore.DynamoStore, context.Context) (int, error)                                             = (*dynamostore.DynamoStore).Reseal
	_ func(*dynamostore.DynamoStore, context.Context, string) ([]dynamostore.OwnerSession, error)              = (*dynamostore.DynamoStore).OwnerSessions
	_ func(*dynamostore.DynamoStore, context.Context, string, []byte, time.Time) (bool, error)                 = (*dynamostore.DynamoStore).CommitNewCtx
	_ func(*dynamostore.DynamoStore) dynamostore.ClearTokenStats                                               = (*dynamostore.DynamoStore).ClearTokenStats
	_ dynamostore.CommitNewStore                                                                               = (*dynamostore.DynamoStore)(nil)
	_ dynamostore.CommitNewStore                                                                               = (*dynamostore.CachedStore)(nil)
	_ func(scs.Store, scs.Store, scs.Codec, ...func(*dynamostore.MigrateOptions)) *dynamostore.MigratingStore  = dynamostore.NewMigrating
	_ func(*dynamostore.MigratingStore) dynamostore.MigrateStats                                               = (*dynamostore.MigratingStore).Stats
	_ scs.IterableCtxStore                                                                                     = (*dynamostore.MigratingStore)(nil)
	_ dynamostore.CacheableStore                                                                               = (*dynamostore.MigratingStore)(nil)
	_ dynamostore.OwnerStore                                                                                   = (*dynamostore.MigratingStore)(nil)
	_ dynamostore.TableStore                                                                                   = (*dynamostore.MigratingStore)(nil)
	_ dynamostore.OwnerSessionStore                                                                            = (*dynamostore.MigratingStore)(nil)
	_ dynamostore.TableStore                                                                                   = (*dynamostore.CachedStore)(nil)
	_                                                                                                          = []dynamostore.MigratePhase{dynamostore.MigrateToOnly, dynamostore.MigrateWriteBoth, dynamostore.MigrateReadFrom, dynamostore.MigrateReadTo}
	_ func(*dynamostore.DynamoStore, context.Context, *scs.SessionManager) string                              = (*dynamostore.DynamoStore).CurrentSessionID
	_ func(*dynamostore.DynamoStore, context.Context, string, string) (bool, error)                            = (*dynamostore.DynamoStore).DeleteOwnerSession
	_ func(*dynamostore.DynamoStore, context.Context, string, string) (int, error)                             = (*dynamostore.DynamoStore).DeleteOwnerExcept
	_ func(*dynamostore.DynamoStore, context.Context, string, int) (int, error)                                = (*dynamostore.DynamoStore).LimitOwner
	_ dynamostore.OwnerSessionStore                                                                            = (*dynamostore.DynamoStore)(nil)
	_ func(*dynamostore.DynamoStore)                                                                           = (*dynamostore.DynamoStore).StopCleanup
	_ scs.IterableCtxStore                                                                                     = (*dynamostore.DynamoStore)(nil)
	_ scs.IterableStore                                                                                        = (*dynamostore.DynamoStore)(nil)
	_ dynamostore.CacheableStore                                                                               = (*dynamostore.DynamoStore)(nil)
	_ dynamostore.TableStore                                                                                   = (*dynamostore.DynamoStore)(nil)
	_ dynamostore.OwnerStore                                                                                   = (*dynamostore.DynamoStore)(nil)
	_ func(*dynamostore.DynamoStore) dynamostore.Options                                                       = (*dynamostore.DynamoStore).Options
	_ func(*dynamostore.CachedStore, string) ([]byte, bool, error)                                             = (*dynamostore.CachedStore).Find
	_ func(*dynamostore.CachedStore, context.Context, string) ([]byte, bool, error)                            = (*dynamostore.CachedStore).FindCtx
	_ func(*dynamostore.CachedStore, string, []byte, time.Time) error                                          = (*dynamostore.CachedStore).Commit
	_ func(*dynamostore.CachedStore, context.Context, string, []byte, time.Time) error                         = (*dynamostore.CachedStore).CommitCtx
	_ func(*dynamostore.CachedStore, string) error                                                             = (*dynamostore.CachedStore).Delete
	_ func(*dynamostore.CachedStore, context.Context, string) error                                            = (*dynamostore.CachedStore).DeleteCtx
	_ func(*dynamostore.CachedStore) (map[string][]byte, error)                                                = (*dynamostore.CachedStore).All
	_ func(*dynamostore.CachedStore, context.Context) (map[string][]byte, error)                               = (*dynamostore.CachedStore).AllCtx
	_ func(*dynamostore.CachedStore, context.Context, string) (int, error)                                     = (*dynamostore.CachedStore).DeleteOwner
	_ func(*dynamostore.CachedStore) dynamostore.CacheStats                                                    = (*dynamostore.CachedStore).Stats
	_ func(*dynamostore.CachedStore, context.Context, string) ([]dynamostore.OwnerSession, error)              = (*dynamostore.CachedStore).OwnerSessions
	_ func(*dynamostore.CachedStore, context.Context, *scs.SessionManager) string                              = (*dynamostore.CachedStore).CurrentSessionID
	_ func(*dynamostore.CachedStore, context.Context, string, string) (bool, error)                            = (*dynamostore.CachedStore).DeleteOwnerSession
	_ func(*dynamostore.CachedStore, context.Context, string, string) (int, error)                             = (*dynamostore.CachedStore).DeleteOwnerExcept
	_ func(*dynamostore.CachedStore, context.Context, string, int) (int, error)                                = (*dynamostore.CachedStore).LimitOwner
	_ scs.IterableCtxStore                                                                                     = (*dynamostore.CachedStore)(nil)
	_ dynamostore.Client                                                                                       = (*dynamodb.Client)(nil)
	_ dynamostore.CreateTableAPIClient                                                                         = (*dynamodb.Client)(nil)
	_ dynamostore.DescribeTimeToLiveAPIClient                                                                  = (*dynamodb.Client)(nil)
	_ func(dynamostore.SharedCache, context.Context, string, bool) (dynamostore.CacheLookup, error)            = dynamostore.SharedCache.Lookup
	_ func(dynamostore.SharedCache, context.Context, string, uint64, *dynamostore.CacheEntry, time.Time) error = dynamostore.SharedCache.Fill
	_ func(dynamostore.SharedCache, context.Context, string) (uint64, error)                                   = dynamostore.SharedCache.BeginWrite
	_ func(dynamostore.SharedCache, context.Context, string, uint64, *dynamostore.CacheEntry, time.Time) error = dynamostore.SharedCache.EndWrite
	_ func(dynamostore.AEAD, []byte, []byte) ([]byte, error)                                                   = dynamostore.AEAD.Encrypt
	_ func(dynamostore.AEAD, []byte, []byte) ([]byte, error)                                                   = dynamostore.AEAD.Decrypt

	// Bulk import from another scs store.
	_ func(*dynamostore.DynamoStore, context.Context, scs.IterableStore, scs.Codec, ...func(*dynamostore.ImportOptions)) (int, error) = (*dynamostore.DynamoStore).Import

	// Every field of the option and result structs, with its type.
	_ = dynamostore.Options{
		TableName: "", KeyAttribute: "", DataAttribute: "", CompressAbove: 0, ExpiryAttribute: "", KeyPrefix: "",
		ConsistentRead: false, CleanupInterval: time.Duration(0), SweepWithTTL: false, SweepLease: false,
		SweepSegments: 0, SweepReadRate: float64(0), SweepGrace: time.Duration(0),
		Owner: func([]byte) (string, bool) { return "", false }, OwnerAttribute: "", OwnerIndex: "",
		Encryption: dynamostore.AEAD(nil), RequireEncryption: false, RevocationPeriod: time.Duration(0),
		HashTokens: false, ClearTokenFallback: false,
		MeterProvider: metric.MeterProvider(nil), Logger: (*slog.Logger)(nil),
	}
	_ = dynamostore.CacheOptions{
		Cache: scs.Store(nil), MaxBytes: int64(0), MaxEntries: 0, MaxStale: time.Duration(0),
		SkipWriteWithin: time.Duration(0), MeterProvider: metric.MeterProvider(nil), Logger: (*slog.Logger)(nil),
	}
	_ = dynamostore.OwnerSession{ID: "", Data: []byte(nil), Expiry: time.Time{}, LastWrite: time.Time{}, Size: 0}
	_ = dynamostore.CacheEntry{Data: []byte(nil), Expiry: time.Time{}}
	_ = dynamostore.CacheLookup{Entry: dynamostore.CacheEntry{}, Found: false, Lease: uint64(0), Granted: false}
	_ = dynamostore.CacheStats{Hits: uint64(0), Misses: uint64(0), SkippedWrites: uint64(0), CacheErrors: uint64(0)}
	_ = dynamostore.ImportOptions{WriteRate: float64(0), IdleTimeout: time.Duration(0), Workers: 0, Progress: func(dynamostore.ImportProgress) {}}
	_ = dynamostore.ImportProgress{Total: 0, Read: 0, Written: 0, Expired: 0, Present: 0, Undecodable: 0, Unstorable: 0}
	_ = dynamostore.ClearTokenStats{Moved: uint64(0), NotFound: uint64(0)}
)
