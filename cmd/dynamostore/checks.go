package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// describeTable returns the table's description, and an error unless it has
// the key schema the flags describe: a Scan or Query keyed on another
// attribute would find nothing and say the table is empty.
func (f *flags) describeTable(ctx context.Context, client *dynamodb.Client) (*types.TableDescription, error) {
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &f.opts.TableName})
	if err != nil {
		return nil, err
	}
	if err := sessionitem.CheckKeySchema(desc.Table, f.opts.KeyAttribute); err != nil {
		return nil, fmt.Errorf("table %s: %w; is --key-attribute right?", f.opts.TableName, err)
	}
	return desc.Table, nil
}

// checkOwnerIndex returns an error unless the table t has the owner index,
// keyed on the owner attribute, and ACTIVE, as sessions and revoke need it:
// a Query of another index, or on another attribute, finds nothing or
// fails with DynamoDB's ValidationException.
func (f *flags) checkOwnerIndex(t *types.TableDescription) error {
	idx, err := sessionitem.OwnerIndex(t, f.opts.OwnerIndex, f.opts.OwnerAttribute)
	switch {
	case idx == nil:
		var names []string
		for _, g := range t.GlobalSecondaryIndexes {
			names = append(names, aws.ToString(g.IndexName))
		}
		has := "it has no global secondary index"
		if len(names) > 0 {
			has = "its indexes are " + strings.Join(names, ", ") + "; is --owner-index right?"
		}
		return fmt.Errorf("table %s has no index %q (%s); add it with '%s', which keeps the table and its sessions",
			f.opts.TableName, f.opts.OwnerIndex, has, f.command("create-table"))
	case err != nil:
		var keys []string
		for _, k := range idx.KeySchema {
			keys = append(keys, fmt.Sprintf("%s %q", strings.ToLower(string(k.KeyType)), aws.ToString(k.AttributeName)))
		}
		return fmt.Errorf("table %s: %w: its key is %s; is --owner-attribute right?", f.opts.TableName, err, strings.Join(keys, " and "))
	case idx.IndexStatus != types.IndexStatusActive:
		return fmt.Errorf("table %s: index %q is %s, not ACTIVE; '%s' shows when it is", f.opts.TableName, f.opts.OwnerIndex, idx.IndexStatus, f.command("check"))
	}
	return nil
}

// checkReadRate refuses a --read-rate at which the sweep's Scan of the
// table, by its approximate size (DynamoDB updates it about every six
// hours), would take longer than maxScanTime, unless --force.
func (f *flags) checkReadRate(t *types.TableDescription) error {
	size := aws.ToInt64(t.TableSizeBytes)
	// In seconds, not a Duration, which ends at about 292 years.
	seconds := sessionitem.SweepReadSeconds(size, f.readRate)
	if f.force || seconds <= maxScanTime.Seconds() {
		return nil
	}
	return &usageError{fmt.Sprintf("--read-rate %v: a Scan of table %s (about %s, %.0f read units) would take %s at that rate; pass a higher --read-rate, or --force to run it anyway",
		f.readRate, f.opts.TableName, formatBytes(size), float64(size)/sessionitem.ScanBytesPerReadUnit, formatLong(seconds))}
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// longestEstimate is the most years formatLong writes as a figure.
const longestEstimate = 1000

// formatLong writes about how long seconds, a day or more, is: in days, in
// years, or "more than 1000 years" (+Inf included).
func formatLong(seconds float64) string {
	days := seconds / (24 * 60 * 60)
	switch {
	case days/365 > longestEstimate:
		return fmt.Sprintf("more than %d years", longestEstimate)
	case days >= 365:
		return fmt.Sprintf("about %.1f years", days/365)
	}
	return fmt.Sprintf("about %.1f days", days)
}

// sampleSize is how many items a diagnosis of wrong names reads at most.
const sampleSize = 20

// misnaming is what a sample of items that are no sessions under the
// flags' names says of them: the flag that is likely wrong, and why.
type misnaming struct {
	flag   string // "key-prefix", "data-attribute", "expiry-attribute", or both of the last two
	detail string // which names no item has, and the names the items have
}

func (m *misnaming) String() string {
	return fmt.Sprintf("%s; is --%s right?", m.detail, m.flag)
}

// misnamed looks at sample, items read from the table, and returns what
// is likely wrong with the flags when none of them is a session or a
// revocation under the flags' names: no key under --key-prefix, or, among
// the keys under it, none with the data or the expiry attribute. It
// returns nil when some item is a session or a revocation, when the sample
// is empty, or when the names are there (the items are not sessions for
// another reason, such as an attribute of the wrong type). The sweeper
// lease is left out: it is no session under any name. Only attribute names
// are named, never a key or a value.
func (f *flags) misnamed(sample []map[string]types.AttributeValue) *misnaming {
	names := f.itemNames()
	var under, all []map[string]types.AttributeValue
	for _, item := range sample {
		if key, ok := item[names.Key].(*types.AttributeValueMemberS); ok && strings.HasSuffix(key.Value, sessionitem.LeaseToken) {
			continue
		}
		if sessionitem.Classify(item, names) != sessionitem.Other {
			return nil
		}
		all = append(all, item)
		if key, ok := item[names.Key].(*types.AttributeValueMemberS); ok {
			if _, ok := sessionitem.Token(key.Value, names.Prefix); ok {
				under = append(under, item)
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	if len(under) == 0 {
		return &misnaming{flag: "key-prefix", detail: fmt.Sprintf("none of the %d items sampled has a key that is --key-prefix %q followed by a token", len(all), names.Prefix)}
	}
	var hasData, hasExpiry bool
	found := map[string]bool{}
	for _, item := range under {
		for _, fm := range sessionitem.Formats {
			if _, ok := item[fm.Attribute(names.Data)]; ok {
				hasData = true
			}
		}
		if _, ok := item[names.Expiry]; ok {
			hasExpiry = true
		}
		for name := range maps.Keys(item) {
			found[name] = true
		}
	}
	var flag, missing string
	data := fmt.Sprintf("%q (nor %q, %q or %q)", names.Data, names.Data+sessionitem.ZstdSuffix, names.Data+sessionitem.SealedSuffix, names.Data+sessionitem.ZstdSuffix+sessionitem.SealedSuffix)
	switch {
	case !hasData && !hasExpiry:
		flag, missing = "data-attribute and --expiry-attribute", fmt.Sprintf("attribute %s, nor %q", data, names.Expiry)
	case !hasData:
		flag, missing = "data-attribute", "attribute "+data
	case !hasExpiry:
		flag, missing = "expiry-attribute", fmt.Sprintf("attribute %q", names.Expiry)
	default:
		return nil
	}
	have := slices.Sorted(maps.Keys(found))
	if len(have) > 12 {
		have = append(have[:12], "...")
	}
	return &misnaming{flag: flag, detail: fmt.Sprintf("none of the %d items sampled under the key prefix has %s; they have %s", len(under), missing, strings.Join(have, ", "))}
}

// sampleKeys reads the items with keys (at most sampleSize of them) whole,
// for misnamed: an owner index holds keys only.
func (f *flags) sampleKeys(ctx context.Context, client *dynamodb.Client, keys []string) ([]map[string]types.AttributeValue, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var request []map[string]types.AttributeValue
	for _, key := range keys[:min(len(keys), sampleSize)] {
		request = append(request, map[string]types.AttributeValue{f.opts.KeyAttribute: &types.AttributeValueMemberS{Value: key}})
	}
	out, err := client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
		f.opts.TableName: {Keys: request},
	}})
	if err != nil {
		return nil, fmt.Errorf("read a sample of items: %w", err)
	}
	return out.Responses[f.opts.TableName], nil // what it could read is sample enough
}

// sampleScan reads the first items of a Scan of the table whole, for
// misnamed.
func (f *flags) sampleScan(ctx context.Context, client *dynamodb.Client) ([]map[string]types.AttributeValue, error) {
	out, err := client.Scan(ctx, &dynamodb.ScanInput{TableName: &f.opts.TableName, Limit: aws.Int32(sampleSize)})
	if err != nil {
		return nil, fmt.Errorf("read a sample of items: %w", err)
	}
	return out.Items, nil
}
