package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// What the page shows of the store's work, beyond the session itself: the
// item as DynamoDB holds it, what each request cost, and the sweeper.

// cost is the capacity one HTTP request consumed, as DynamoDB reported it.
type cost struct {
	mu          sync.Mutex
	read, write float64
}

func (c *cost) add(cc *types.ConsumedCapacity, write bool) {
	if c == nil || cc == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if write {
		c.write += aws.ToFloat64(cc.CapacityUnits)
	} else {
		c.read += aws.ToFloat64(cc.CapacityUnits)
	}
}

func (c *cost) units() (read, write float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.read, c.write
}

type costKey struct{}

func costOf(ctx context.Context) *cost {
	c, _ := ctx.Value(costKey{}).(*cost)
	return c
}

// costClient is the store's DynamoDB client: the SDK's, adding the capacity
// each request reports to the cost its context carries. The store asks
// DynamoDB for the capacity because the demo's telemetry records it.
type costClient struct{ *dynamodb.Client }

func (c costClient) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := c.Client.GetItem(ctx, in, optFns...)
	if err == nil {
		costOf(ctx).add(out.ConsumedCapacity, false)
	}
	return out, err
}

func (c costClient) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := c.Client.PutItem(ctx, in, optFns...)
	if err == nil {
		costOf(ctx).add(out.ConsumedCapacity, true)
	}
	return out, err
}

func (c costClient) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out, err := c.Client.DeleteItem(ctx, in, optFns...)
	if err == nil {
		costOf(ctx).add(out.ConsumedCapacity, true)
	}
	return out, err
}

func (c costClient) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := c.Client.Query(ctx, in, optFns...)
	if err == nil {
		costOf(ctx).add(out.ConsumedCapacity, false)
	}
	return out, err
}

func (c costClient) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out, err := c.Client.BatchGetItem(ctx, in, optFns...)
	if err == nil {
		for i := range out.ConsumedCapacity {
			costOf(ctx).add(&out.ConsumedCapacity[i], false)
		}
	}
	return out, err
}

// sweeperLog passes every record to its handler, and keeps the sweeper's
// latest line for the page.
type sweeperLog struct {
	slog.Handler
	last *atomic.Pointer[string]
}

func (h sweeperLog) Handle(ctx context.Context, r slog.Record) error {
	if msg, ok := strings.CutPrefix(r.Message, "dynamostore: "); ok && strings.Contains(msg, "sweep") {
		s := r.Time.Format("15:04:05") + ": " + msg
		h.last.Store(&s)
	}
	return h.Handler.Handle(ctx, r)
}

func (h sweeperLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return sweeperLog{h.Handler.WithAttrs(attrs), h.last}
}

func (h sweeperLog) WithGroup(name string) slog.Handler {
	return sweeperLog{h.Handler.WithGroup(name), h.last}
}

// itemView is a session's item as DynamoDB holds it.
type itemView struct {
	Key        string // as stored: the hash of the cookie's token
	Attributes []attributeView
	Bytes      int    // the item's size as DynamoDB counts it, about
	Format     string // plain, compressed, sealed
	ExpiresMs  int64
}

type attributeView struct {
	Name, Type string
	Bytes      int
}

// storedKey is the key under which the store holds token: the app uses
// scs's HashTokenInStore, which stores a SHA-256 hash in base64url.
func storedKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// inspect reads the session's item with a plain client, so that the
// inspection costs the page nothing it reports. It returns nil when there
// is none yet: scs writes a new session after the response.
func inspect(ctx context.Context, raw *dynamodb.Client, table, token string) (*itemView, error) {
	if token == "" {
		return nil, nil
	}
	key := storedKey(token)
	out, err := raw.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &table,
		Key:            map[string]types.AttributeValue{sessionitem.DefaultKeyAttribute: &types.AttributeValueMemberS{Value: key}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil || out.Item == nil {
		return nil, err
	}
	v := &itemView{Key: key, Format: "plain"}
	for name, av := range out.Item {
		a := attributeView{Name: name}
		switch av := av.(type) {
		case *types.AttributeValueMemberS:
			a.Type, a.Bytes = "S", len(av.Value)
		case *types.AttributeValueMemberB:
			a.Type, a.Bytes = "B", len(av.Value)
		case *types.AttributeValueMemberN:
			// DynamoDB stores about one byte per two significant digits.
			a.Type, a.Bytes = "N", (len(strings.TrimLeft(av.Value, "-0"))+1)/2+1
		default:
			a.Type = "?"
		}
		v.Attributes = append(v.Attributes, a)
		v.Bytes += len(name) + a.Bytes
	}
	slices.SortFunc(v.Attributes, func(a, b attributeView) int { return strings.Compare(a.Name, b.Name) })
	if _, f, err := sessionitem.Data(out.Item, sessionitem.DefaultDataAttribute); err == nil {
		switch {
		case f.Compressed && f.Sealed:
			v.Format = "compressed (zstd), then sealed"
		case f.Compressed:
			v.Format = "compressed (zstd)"
		case f.Sealed:
			v.Format = "sealed (AEAD)"
		}
	}
	v.ExpiresMs, _ = sessionitem.ExpiryMillis(out.Item, sessionitem.DefaultExpiryAttribute)
	return v, nil
}

// expiresIn is how long until the item expires, for the page's first paint.
func (v *itemView) ExpiresIn() string {
	return time.Until(time.UnixMilli(v.ExpiresMs)).Round(time.Second).String()
}
