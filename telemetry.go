package dynamostore

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instrumentationScope names the meter of every instrument the package
// makes.
const instrumentationScope = "github.com/dynamostore/dynamostore"

// The store's operations, as the operation attribute names them.
type operation int

const (
	opFind operation = iota
	opCommit
	opDelete
	opAll
	opDeleteExpired
	opDeleteOwner
	opOwnerTokens
	opReseal
	opOwnerSessions
	opDeleteOwnerSession
	opDeleteOwnerExcept
	opLimitOwner
	opCommitNew
	opImport
	numOperations
)

// operationNames are the operation attribute's values.
var operationNames = [numOperations]string{"find", "commit", "delete", "all", "delete_expired", "delete_owner", "owner_tokens", "reseal",
	"owner_sessions", "delete_owner_session", "delete_owner_except", "limit_owner", "commit_new", "import"}

// String returns the operation as errors name it.
func (o operation) String() string {
	return strings.ReplaceAll(operationNames[o], "_", " ")
}

// Outcomes of an operation.
type outcome int

const (
	outcomeOK outcome = iota
	outcomeNotFound
	outcomeError
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "not_found", "error"}

// capacityKind is whether DynamoDB billed read or write units.
type capacityKind int

const (
	kindRead capacityKind = iota
	kindWrite
)

// storeMetrics are a DynamoStore's instruments, with their attribute sets
// made once, so that recording allocates nothing.
type storeMetrics struct {
	ops           metric.Int64Counter
	duration      metric.Float64Histogram
	capacity      metric.Float64Counter
	sweepItems    metric.Int64Counter
	sweepDuration metric.Float64Histogram
	leaseHeld     metric.Int64UpDownCounter
	clearTokens   metric.Int64Counter

	opAttrs       [numOperations][numOutcomes][]metric.AddOption
	durationAttrs [numOperations][]metric.RecordOption
	capacityAttrs [numOperations][2][]metric.AddOption
	scanned       []metric.AddOption
	deleted       []metric.AddOption
	sweepAttrs    []metric.RecordOption
	leaseAttrs    []metric.AddOption
	moved         []metric.AddOption
	notMoved      []metric.AddOption
}

// newStoreMetrics makes the instruments on mp's meter, or the global
// provider's when mp is nil. The OpenTelemetry API returns a working no-op
// instrument with any error, which is the instrument's name clashing with
// another's; such an error is ignored.
func newStoreMetrics(mp metric.MeterProvider, table string) *storeMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(instrumentationScope)
	m := &storeMetrics{}
	m.ops, _ = meter.Int64Counter("dynamostore.operations",
		metric.WithDescription("Store calls, by operation and outcome; a background sweep is one delete_expired."))
	m.duration, _ = meter.Float64Histogram("dynamostore.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("How long store calls take, by operation."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	m.capacity, _ = meter.Float64Counter("dynamostore.capacity", metric.WithUnit("{capacity_unit}"),
		metric.WithDescription("Capacity units DynamoDB reported as consumed, index writes included, by operation and kind (read or write)."))
	m.sweepItems, _ = meter.Int64Counter("dynamostore.sweep.items",
		metric.WithDescription("Items a sweep's Scan read (scanned, what it is billed on) and expired sessions it deleted (deleted)."))
	m.sweepDuration, _ = meter.Float64Histogram("dynamostore.sweep.duration", metric.WithUnit("s"),
		metric.WithDescription("How long sweeps take."),
		metric.WithExplicitBucketBoundaries(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600))
	m.leaseHeld, _ = meter.Int64UpDownCounter("dynamostore.sweep.lease_held",
		metric.WithDescription("1 while this store holds the sweeper lease."))
	m.clearTokens, _ = meter.Int64Counter("dynamostore.clear_token_fallback",
		metric.WithDescription("Finds that read a clear token's key under ClearTokenFallback, by result: moved (a live session moved under the hashed key) or not_found."))

	tableAttr := attribute.String("table", table)
	for op, name := range operationNames {
		opAttr := attribute.String("operation", name)
		for oc, outcome := range outcomeNames {
			m.opAttrs[op][oc] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(tableAttr, opAttr, attribute.String("outcome", outcome)))}
		}
		m.durationAttrs[op] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(tableAttr, opAttr))}
		for kind, k := range []string{"read", "write"} {
			m.capacityAttrs[op][kind] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(tableAttr, opAttr, attribute.String("kind", k)))}
		}
	}
	m.scanned = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(tableAttr, attribute.String("result", "scanned")))}
	m.deleted = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(tableAttr, attribute.String("result", "deleted")))}
	m.moved = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(tableAttr, attribute.String("result", "moved")))}
	m.notMoved = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(tableAttr, attribute.String("result", "not_found")))}
	table1 := metric.WithAttributeSet(attribute.NewSet(tableAttr))
	m.sweepAttrs = []metric.RecordOption{table1}
	m.leaseAttrs = []metric.AddOption{table1}
	return m
}

// done records one call of op that began at start.
func (m *storeMetrics) done(ctx context.Context, op operation, start time.Time, err error, found bool) {
	oc := outcomeOK
	switch {
	case err != nil:
		oc = outcomeError
	case !found:
		oc = outcomeNotFound
	}
	m.ops.Add(ctx, 1, m.opAttrs[op][oc]...)
	m.duration.Record(ctx, time.Since(start).Seconds(), m.durationAttrs[op]...)
}

// capacityRequest returns what to ask DynamoDB for: the consumed capacity,
// only when something records it.
func (m *storeMetrics) capacityRequest(ctx context.Context) types.ReturnConsumedCapacity {
	if m.capacity.Enabled(ctx) {
		return types.ReturnConsumedCapacityTotal
	}
	return ""
}

// consumed records the capacity DynamoDB reported for a request of op.
// DynamoDB Local and dynalite report only the total, so the kind follows
// from the request.
func (m *storeMetrics) consumed(ctx context.Context, op operation, kind capacityKind, cc *types.ConsumedCapacity) {
	if cc == nil {
		return
	}
	if units := aws.ToFloat64(cc.CapacityUnits); units > 0 {
		m.capacity.Add(ctx, units, m.capacityAttrs[op][kind]...)
	}
}

// cacheMetrics are a CachedStore's instruments and their attribute sets.
type cacheMetrics struct {
	lookups, skipped, errors metric.Int64Counter
	hit, miss, table         []metric.AddOption
}

func newCacheMetrics(mp metric.MeterProvider, table string) cacheMetrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(instrumentationScope)
	var m cacheMetrics
	m.lookups, _ = meter.Int64Counter("dynamostore.cache.lookups",
		metric.WithDescription("CachedStore Finds, by result: hit (from the cache) or miss (from the backing store)."))
	m.skipped, _ = meter.Int64Counter("dynamostore.cache.skipped_writes",
		metric.WithDescription("CachedStore Commits that SkipWriteWithin kept from the backing store."))
	m.errors, _ = meter.Int64Counter("dynamostore.cache.errors",
		metric.WithDescription("Errors of the cache layer, each costing a miss."))
	var attrs []attribute.KeyValue
	if table != "" {
		attrs = append(attrs, attribute.String("table", table))
	}
	with := func(kv ...attribute.KeyValue) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(append(kv, attrs...)...))}
	}
	m.hit = with(attribute.String("result", "hit"))
	m.miss = with(attribute.String("result", "miss"))
	m.table = with()
	return m
}
