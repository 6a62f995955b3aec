package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http"
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
// item as DynamoDB holds it, what each browser's requests cost, and the
// sweeper.

// cost is the capacity one HTTP request consumed, as DynamoDB reported it
// in the answer to each call the store made for it.
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

// units returns the capacity so far; a nil cost has none.
func (c *cost) units() units {
	if c == nil {
		return units{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return units{c.read, c.write}
}

// units are read and write capacity units.
type units struct{ Read, Write float64 }

// requestCost is what one request of a browser cost.
type requestCost struct {
	Request string // its method and path
	units
}

type costKey struct{}

type visitorKey struct{}

func costOf(ctx context.Context) *cost {
	c, _ := ctx.Value(costKey{}).(*cost)
	return c
}

// visitorOf returns the browser the request in ctx comes from.
func visitorOf(ctx context.Context) *visitor {
	v, _ := ctx.Value(visitorKey{}).(*visitor)
	return v
}

// visitor is one browser, told apart by the demo's own cookie rather than
// the session's, whose token changes at login and logout: what its latest
// request cost, and all of them.
type visitor struct {
	mu       sync.Mutex
	last     *requestCost
	total    units
	requests int
}

func (v *visitor) record(rc requestCost) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.last = &rc
	v.total.Read += rc.Read
	v.total.Write += rc.Write
	v.requests++
}

// costs returns what the visitor's latest recorded request cost (nil
// before the first), and all its requests so far. A nil visitor has none.
func (v *visitor) costs() (last *requestCost, total units, requests int) {
	if v == nil {
		return nil, units{}, 0
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.last, v.total, v.requests
}

// visitorCookie names the demo's cookie that tells browsers apart.
const visitorCookie = "demo_visitor"

// maxVisitors bounds the visitors the demo remembers; past it, each new
// one makes it forget another.
const maxVisitors = 10_000

// visitors are the browsers the demo has seen, by the ID in their cookie.
type visitors struct {
	mu   sync.Mutex
	byID map[string]*visitor
}

// of returns the browser that sent r, by its cookie; for a browser without
// one, or with one the demo does not know (made before a restart, forgotten
// or made up), it is a new visitor whose cookie it sets on w.
func (vs *visitors) of(w http.ResponseWriter, r *http.Request) *visitor {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if c, err := r.Cookie(visitorCookie); err == nil {
		if v, ok := vs.byID[c.Value]; ok {
			return v
		}
	}
	if len(vs.byID) >= maxVisitors {
		for id := range vs.byID {
			delete(vs.byID, id)
			break
		}
	}
	id := rand.Text()
	v := &visitor{}
	vs.byID[id] = v
	http.SetCookie(w, &http.Cookie{Name: visitorCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return v
}

// withCosts gives each request a cost, which the store's client adds the
// capacity of each call to (costClient), and records it as its browser's
// latest once LoadAndSave, inside next, has committed the session: as the
// response starts, before the browser can see it and send its next
// request, or when next returns without writing.
func withCosts(next http.Handler) http.Handler {
	vs := &visitors{byID: map[string]*visitor{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := vs.of(w, r)
		c := &cost{}
		cw := &costWriter{ResponseWriter: w}
		cw.record = func() { v.record(requestCost{r.Method + " " + r.URL.Path, c.units()}) }
		ctx := context.WithValue(context.WithValue(r.Context(), costKey{}, c), visitorKey{}, v)
		next.ServeHTTP(cw, r.WithContext(ctx))
		cw.once.Do(cw.record)
	})
}

// costWriter calls record once, when its response starts.
type costWriter struct {
	http.ResponseWriter
	once   sync.Once
	record func()
}

func (w *costWriter) WriteHeader(code int) {
	w.once.Do(w.record)
	w.ResponseWriter.WriteHeader(code)
}

func (w *costWriter) Write(b []byte) (int, error) {
	w.once.Do(w.record)
	return w.ResponseWriter.Write(b)
}

func (w *costWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
	Owner      string // the owner attribute, empty for none
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
	if o, ok := out.Item[sessionitem.DefaultOwnerAttribute].(*types.AttributeValueMemberS); ok {
		v.Owner = o.Value
	}
	v.ExpiresMs, _ = sessionitem.ExpiryMillis(out.Item, sessionitem.DefaultExpiryAttribute)
	return v, nil
}

// expiresIn is how long until the item expires, for the page's first paint.
func (v *itemView) ExpiresIn() string {
	return time.Until(time.UnixMilli(v.ExpiresMs)).Round(time.Second).String()
}
