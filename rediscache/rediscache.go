// Package rediscache is a cache layer on Redis for dynamostore's
// CachedStore that several application instances can share without ever
// serving a stale session: a dynamostore.SharedCache.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	cached := dynamostore.NewCached(store, func(o *dynamostore.CacheOptions) {
//		o.Cache = rediscache.New(rdb)
//	})
//
// A plain cache of sessions on Redis (scs's goredisstore, say) cannot be
// shared safely: an instance whose miss read DynamoDB just before another
// instance deleted the session caches what it read, and every instance
// then serves it. This package keeps leases, as memcache does at Facebook
// (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013): a miss may
// fill only a token that no write has touched since the miss began, and
// while a write of a token is under way on any instance, no instance is
// served or fills a copy of it. Each step is one Lua script, which Redis
// runs atomically.
//
// Each token is one Redis hash under KeyPrefix followed by the key the
// CachedStore gives (the DynamoStore's table and KeyPrefix, then the
// token), holding the copy and when it ends, or the lease, or the writes
// under way. A cache hit is one round trip (EVALSHA); a miss is one more,
// to fill; a Commit or Delete through the CachedStore is two, around its
// backing write.
//
// The marks of writes under way must stay while the writes do. Run Redis
// with enough memory or with maxmemory-policy noeviction (every key here
// has a TTL, so the volatile-* policies may evict them), and do not flush
// or delete its keys while the application runs: a mark that disappears
// lets a miss fill what it read before the write, served until the write
// ends (which drops it) or, if that end cannot reach Redis, for up to
// MaxStale.
package rediscache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dynamostore/dynamostore"
)

// Options configures a Cache.
type Options struct {
	// KeyPrefix is prepended to every token to make its Redis key. The
	// default is "dynamostore:"; an empty string takes the default.
	KeyPrefix string

	// LeaseTimeout is how long a lease lasts: the longest a miss's backing
	// read may take and still fill the cache. A lease whose holder stopped
	// (a crashed instance) keeps other instances from filling the token
	// until it lapses; they still read the backing store. The default is
	// 10 seconds; zero or less takes the default.
	LeaseTimeout time.Duration

	// WriteTimeout is how long the mark of a write under way lasts, while
	// no instance is served or fills a copy of the token: the longest a
	// backing Commit or Delete may take. A write that takes longer leaves
	// nothing cached when it ends (it drops any copy, and keeps the writes
	// begun since from caching), but between its mark's lapse and its end
	// a miss may fill, and serve, what it read before the write. The
	// default is a minute; zero or less takes the default.
	WriteTimeout time.Duration
}

// The defaults of Options.
const (
	DefaultKeyPrefix    = "dynamostore:"
	DefaultLeaseTimeout = 10 * time.Second
	DefaultWriteTimeout = time.Minute
)

// Cache is a dynamostore.SharedCache on Redis. Put it in
// dynamostore.CacheOptions.Cache. It is safe for concurrent use, and
// several CachedStores, in one process or many, may share one.
type Cache struct {
	client redis.UniversalClient
	opts   Options
	now    func() time.Time
}

var (
	_ dynamostore.SharedCache = (*Cache)(nil)
	_ interface {
		Find(string) ([]byte, bool, error)
		Commit(string, []byte, time.Time) error
		Delete(string) error
	} = (*Cache)(nil)
)

// New returns a Cache on the Redis that client reaches, with the defaults
// described at Options changed by optFns. client is a go-redis v9
// *redis.Client, *redis.ClusterClient or *redis.Ring (in a cluster, each
// token's key is in one slot, so every script works).
func New(client redis.UniversalClient, optFns ...func(*Options)) *Cache {
	o := Options{KeyPrefix: DefaultKeyPrefix, LeaseTimeout: DefaultLeaseTimeout, WriteTimeout: DefaultWriteTimeout}
	for _, fn := range optFns {
		fn(&o)
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.LeaseTimeout <= 0 {
		o.LeaseTimeout = DefaultLeaseTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	return &Cache{client: client, opts: o, now: time.Now}
}

// A token's hash has these fields:
//
//	d, e, u  the copy: data, the session's expiry and the copy's end, in
//	         Unix milliseconds by the writer's clock
//	l        the lease granted, while there is one and no copy
//	p, n, g  while writes are under way: how many, how many began since
//	         there were none, and that period's number, which each
//	         write's end checks to know its period did not lapse
//
// A hash holds a copy, a lease, or writes under way, never two of them.

// lookupScript returns {1, data, expiry} for a fresh copy; {3, lease} when
// it grants ARGV[3] as the lease; {2, lease} when another caller holds it;
// {0} otherwise. ARGV: now, whether to grant a lease ("1"), the lease,
// the lease's time to live in milliseconds.
var lookupScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'd', 'e', 'u', 'p', 'l')
if v[4] then return {0} end
local now = tonumber(ARGV[1])
if v[1] and now < tonumber(v[3]) and now < tonumber(v[2]) then return {1, v[1], v[2]} end
if ARGV[2] ~= '1' then return {0} end
if v[5] then return {2, v[5]} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'l', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {3, ARGV[3]}
`)

// fillScript caches the copy in ARGV[3..5] for ARGV[6] milliseconds if the
// lease ARGV[1] is still the token's and ARGV[2] is "1", and ends the
// lease; it returns 1 if the lease was the token's.
var fillScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'l') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'e', ARGV[4], 'u', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
return 1
`)

// beginScript marks a write under way, dropping the copy and the lease,
// and returns the period's number: ARGV[1] if none was under way. ARGV[2]
// is the mark's time to live in milliseconds.
var beginScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'p') == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'p', 1, 'n', 1, 'g', ARGV[1])
else
  redis.call('HINCRBY', KEYS[1], 'p', 1)
  redis.call('HINCRBY', KEYS[1], 'n', 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HGET', KEYS[1], 'g')
`)

// endScript ends a write of the period ARGV[1]. When it is the last write
// under way and was the period's only one, it caches the copy in
// ARGV[3..5] for ARGV[6] milliseconds if ARGV[2] is "1". If the period
// lapsed, this write overlapped whatever came since: it drops what was
// cached, or, when writes of another period are under way, counts itself
// among them so that their period caches nothing.
var endScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'p', 'n', 'g')
if v[3] ~= ARGV[1] then
  if v[1] then
    redis.call('HINCRBY', KEYS[1], 'n', 1)
  else
    redis.call('DEL', KEYS[1])
  end
  return 0
end
local p = tonumber(v[1]) - 1
if p > 0 then
  redis.call('HSET', KEYS[1], 'p', p)
  return 0
end
redis.call('DEL', KEYS[1])
if v[2] == '1' and ARGV[2] == '1' then
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'e', ARGV[4], 'u', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return 1
end
return 0
`)

func (c *Cache) key(token string) string { return c.opts.KeyPrefix + token }

// newID returns a lease or period number: random, so that instances need
// not agree on one, and never zero.
func newID() uint64 { return rand.Uint64()>>1 + 1 }

// Lookup returns the token's copy if it is fresh by this instance's clock,
// and otherwise grants or reports the token's lease when lease is true.
func (c *Cache) Lookup(ctx context.Context, token string, lease bool) (dynamostore.CacheLookup, error) {
	want := "0"
	if lease {
		want = "1"
	}
	res, err := lookupScript.Run(ctx, c.client, []string{c.key(token)},
		c.now().UnixMilli(), want, newID(), c.opts.LeaseTimeout.Milliseconds()).Slice()
	if err != nil {
		return dynamostore.CacheLookup{}, c.error("lookup", err)
	}
	switch code, _ := res[0].(int64); {
	case code == 1 && len(res) == 3:
		data, _ := res[1].(string)
		ms, err := strconv.ParseInt(fmt.Sprint(res[2]), 10, 64)
		if err != nil {
			return dynamostore.CacheLookup{}, c.error("lookup", errors.New("corrupt expiry"))
		}
		return dynamostore.CacheLookup{Found: true, Entry: dynamostore.CacheEntry{Data: []byte(data), Expiry: time.UnixMilli(ms)}}, nil
	case (code == 2 || code == 3) && len(res) == 2:
		id, err := strconv.ParseUint(fmt.Sprint(res[1]), 10, 64)
		if err != nil {
			return dynamostore.CacheLookup{}, c.error("lookup", errors.New("corrupt lease"))
		}
		return dynamostore.CacheLookup{Lease: id, Granted: code == 3}, nil
	}
	return dynamostore.CacheLookup{}, nil
}

// Fill caches entry until until if lease is still the token's, and ends
// the lease.
func (c *Cache) Fill(ctx context.Context, token string, lease uint64, entry *dynamostore.CacheEntry, until time.Time) error {
	args := append([]any{lease}, c.entryArgs(entry, until)...)
	if err := fillScript.Run(ctx, c.client, []string{c.key(token)}, args...).Err(); err != nil {
		return c.error("fill", err)
	}
	return nil
}

// BeginWrite marks a write of the token under way on every instance.
func (c *Cache) BeginWrite(ctx context.Context, token string) (uint64, error) {
	res, err := beginScript.Run(ctx, c.client, []string{c.key(token)}, newID(), c.opts.WriteTimeout.Milliseconds()).Text()
	if err != nil {
		return 0, c.error("begin write", err)
	}
	id, err := strconv.ParseUint(res, 10, 64)
	if err != nil {
		return 0, c.error("begin write", errors.New("corrupt period"))
	}
	return id, nil
}

// EndWrite ends a write that BeginWrite marked, caching entry until until
// when no other write of the token overlapped it.
func (c *Cache) EndWrite(ctx context.Context, token string, write uint64, entry *dynamostore.CacheEntry, until time.Time) error {
	args := append([]any{write}, c.entryArgs(entry, until)...)
	if err := endScript.Run(ctx, c.client, []string{c.key(token)}, args...).Err(); err != nil {
		return c.error("end write", err)
	}
	return nil
}

// entryArgs returns a script's arguments for entry: whether there is one,
// its data, expiry and end, and its time to live from now.
func (c *Cache) entryArgs(entry *dynamostore.CacheEntry, until time.Time) []any {
	ttl := until.Sub(c.now()).Milliseconds()
	if entry == nil || ttl <= 0 {
		return []any{"0", "", 0, 0, 0}
	}
	return []any{"1", entry.Data, entry.Expiry.UnixMilli(), until.UnixMilli(), ttl}
}

func (c *Cache) error(op string, err error) error {
	return fmt.Errorf("rediscache: %s: %w", op, err)
}

// Find returns the token's fresh copy. With Commit and Delete, it lets a
// Cache be given where an scs.Store is asked for
// (dynamostore.CacheOptions.Cache); a CachedStore uses the methods of
// SharedCache instead.
func (c *Cache) Find(token string) ([]byte, bool, error) {
	lk, err := c.Lookup(context.Background(), token, false)
	return lk.Entry.Data, lk.Found, err
}

// Commit caches data until expiry, as a write that began and ended at
// once: it is not cached if another write of the token is under way.
func (c *Cache) Commit(token string, data []byte, expiry time.Time) error {
	ctx := context.Background()
	id, err := c.BeginWrite(ctx, token)
	if err != nil {
		return err
	}
	return c.EndWrite(ctx, token, id, &dynamostore.CacheEntry{Data: data, Expiry: expiry}, expiry)
}

// Delete drops the token's copy and lease.
func (c *Cache) Delete(token string) error {
	ctx := context.Background()
	id, err := c.BeginWrite(ctx, token)
	if err != nil {
		return err
	}
	return c.EndWrite(ctx, token, id, nil, time.Time{})
}
