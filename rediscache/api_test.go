package rediscache_test

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/rediscache"
)

// The exported surface, as users' code is written against it: every name
// and signature below must keep compiling (CONTRIBUTING.md: add beside,
// deprecate, never rename or move). A change that breaks one of these lines
// breaks users' builds; it belongs in a new major version, not here.
var (
	_ func(redis.UniversalClient, ...func(*rediscache.Options)) *rediscache.Cache = rediscache.New
	_ dynamostore.SharedCache                                                     = (*rediscache.Cache)(nil)
	_                                                                             = rediscache.Options{KeyPrefix: "", LeaseTimeout: time.Duration(0), WriteTimeout: time.Duration(0)}
	_ string                                                                      = rediscache.DefaultKeyPrefix
	_ time.Duration                                                               = rediscache.DefaultLeaseTimeout
	_ time.Duration                                                               = rediscache.DefaultWriteTimeout
)
