package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

func sessions(ctx context.Context, f *flags, out io.Writer) error {
	client, oc, err := f.ownerClient(ctx)
	if err != nil {
		return err
	}
	listed, err := dynamostore.NewWithCleanupInterval(oc, 0, f.options).OwnerSessions(ctx, f.owner)
	if err != nil {
		// What it had seen: the index's list, and the sessions read.
		now := time.Now()
		var live, expired int
		oc.mu.Lock()
		listed, read := len(oc.listed), len(oc.read)
		for _, e := range oc.read {
			if e.ok && sessionitem.Expired(e.millis, now) {
				expired++
			} else {
				live++
			}
		}
		oc.mu.Unlock()
		fmt.Fprintf(out, "stopped early: the owner index listed %d items for the owner under the key prefix; of the %d sessions read before it stopped, %d had not expired and %d had\n",
			listed, read, live, expired)
		return err
	}
	// The live sessions are the library's (OwnerSessions); the others it
	// read, by sessionitem's rules, expired or unreadable.
	live := map[string]bool{}
	for _, s := range listed {
		live[s.ID] = true
	}
	tokens := map[string]string{} // by ID
	now := time.Now()
	var expired, unreadable int
	oc.mu.Lock()
	for key, expiry := range oc.read {
		id := sessionitem.SessionID(key)
		switch {
		case live[id]:
			tokens[id] = strings.TrimPrefix(key, f.opts.KeyPrefix)
		case expiry.ok && sessionitem.Expired(expiry.millis, now):
			expired++
		default:
			unreadable++
		}
	}
	oc.mu.Unlock()
	fmt.Fprintf(out, "live sessions: %d\nexpired sessions: %d\n", len(listed), expired)
	if unreadable > 0 {
		fmt.Fprintf(out, "unreadable sessions: %d\n", unreadable)
	}
	if len(listed) > 0 {
		// Most recently written first, as OwnerSessions lists them.
		w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		header := "ID\tLAST WRITE\tEXPIRES\tSIZE"
		if f.showTokens {
			header += "\tTOKEN"
		}
		fmt.Fprintln(w, header)
		for _, s := range listed {
			line := fmt.Sprintf("%s\t%s\t%s\t%d", s.ID, formatTime(s.LastWrite), formatTime(s.Expiry), s.Size)
			if f.showTokens {
				line += "\t" + tokens[s.ID]
			}
			fmt.Fprintln(w, line)
		}
		w.Flush()
	}
	if len(listed)+expired+unreadable > 0 {
		return nil
	}
	return oc.nothingFound(ctx, client, "found no session")
}

// formatTime writes t in UTC to the millisecond, as the table holds it,
// and a zero t (a session last written before the store recorded its last
// write) as "-".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func revoke(ctx context.Context, f *flags, out io.Writer) error {
	client, oc, err := f.ownerClient(ctx)
	if err != nil {
		return err
	}
	stop := f.progress.start(func() string {
		oc.mu.Lock()
		defer oc.mu.Unlock()
		return fmt.Sprintf("revoke in %s: revoked %d sessions (%d expired)", f.opts.TableName, oc.revoked, oc.expired)
	})
	store := dynamostore.NewWithCleanupInterval(oc, 0, f.options)
	var n int
	switch {
	case f.session != "":
		var ok bool
		ok, err = store.DeleteOwnerSession(ctx, f.owner, f.session)
		if ok {
			n = 1
		}
	case f.keep >= 0:
		n, err = store.LimitOwner(ctx, f.owner, f.keep)
	default:
		n, err = store.DeleteOwner(ctx, f.owner)
	}
	stop()
	oc.mu.Lock()
	expired, inFlight := oc.expired, oc.sent-oc.revoked-oc.refused
	oc.mu.Unlock()
	// What was revoked, as each item was the moment it went: --session
	// and --keep revoke live sessions only.
	summary := fmt.Sprintf("revoked %d sessions: %d live, %d expired", n, n-expired, expired)
	if f.keep >= 0 {
		summary = fmt.Sprintf("revoked %d live sessions, keeping the %d most recently written", n, f.keep)
	}
	if err != nil {
		if inFlight > 0 {
			// Sent, unanswered: DynamoDB may have applied them.
			summary = fmt.Sprintf("revoked at least %d sessions: %d live, %d expired; %d more were in flight and may have been applied", n, n-expired, expired, inFlight)
		}
		fmt.Fprintf(out, "stopped early: %s\n", summary)
		return err
	}
	if f.session != "" && n == 0 {
		if err := oc.nothingFound(ctx, client, "revoked no session"); err != nil {
			return err
		}
		// The ID is not repeated: a token pasted by mistake goes no further.
		return fmt.Errorf("revoked no session: the owner has no live session with the --session ID under --key-prefix %q; 'dynamostore sessions --owner ID' lists the IDs (a session committed a moment ago may not be listed yet)", f.opts.KeyPrefix)
	}
	fmt.Fprintln(out, summary)
	if n > 0 || f.keep > 0 {
		return nil
	}
	return oc.nothingFound(ctx, client, "revoked no session")
}

// ownerClient checks the table and its owner index, for sessions and
// revoke, and returns the client and the ownerWatch around it.
func (f *flags) ownerClient(ctx context.Context) (*dynamodb.Client, *ownerWatch, error) {
	client, err := f.client(ctx)
	if err != nil {
		return nil, nil, err
	}
	t, err := f.describeTable(ctx, client)
	if err != nil {
		return nil, nil, err
	}
	if err := f.checkOwnerIndex(t); err != nil {
		return nil, nil, err
	}
	return client, &ownerWatch{Client: client, f: f, read: map[string]expiry{}}, nil
}

// ownerWatch is the client of sessions and revoke: it sees what the
// library's OwnerTokens and DeleteOwner read and write, so the tool can say
// what they counted and why they found nothing, without a rule of its own.
// It asks DynamoDB for the item each revocation replaced (ReturnValues
// ALL_OLD, which costs no more capacity), to tell live from expired.
type ownerWatch struct {
	*dynamodb.Client
	f *flags

	mu      sync.Mutex
	indexed int               // items the owner index read for the owner, under any prefix
	listed  []string          // keys it returned under the prefix
	read    map[string]expiry // the owner's sessions BatchGetItem read
	sent    int               // revocations sent
	revoked int               // of them, put: the condition held
	expired int               // of those, sessions that had expired
	refused int               // of them, refused by DynamoDB: not put
}

type expiry struct {
	millis int64
	ok     bool // the expiry could be read
}

func (w *ownerWatch) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := w.Client.Query(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.indexed += int(out.ScannedCount)
	for _, item := range out.Items {
		if key, ok := item[w.f.opts.KeyAttribute].(*types.AttributeValueMemberS); ok {
			w.listed = append(w.listed, key.Value)
		}
	}
	return out, err
}

func (w *ownerWatch) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	out, err := w.Client.BatchGetItem(ctx, in, optFns...)
	if err != nil {
		return out, err
	}
	names := w.f.itemNames()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, item := range out.Responses[w.f.opts.TableName] {
		if sessionitem.Classify(item, names) != sessionitem.Session {
			continue
		}
		if o, ok := item[w.f.opts.OwnerAttribute].(*types.AttributeValueMemberS); !ok || o.Value != w.f.owner {
			continue // it changed hands since the index listed it
		}
		ms, err := sessionitem.ExpiryMillis(item, w.f.opts.ExpiryAttribute)
		w.read[item[w.f.opts.KeyAttribute].(*types.AttributeValueMemberS).Value] = expiry{ms, err == nil}
	}
	return out, err
}

func (w *ownerWatch) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if !sessionitem.Revoked(in.Item) {
		return w.Client.PutItem(ctx, in, optFns...)
	}
	withOld := *in
	withOld.ReturnValues = types.ReturnValueAllOld
	w.mu.Lock()
	if ctx.Err() == nil { // else the SDK sends nothing
		w.sent++
	}
	w.mu.Unlock()
	out, err := w.Client.PutItem(ctx, &withOld, optFns...)
	if err != nil {
		if refused(err) {
			w.mu.Lock()
			w.refused++
			w.mu.Unlock()
		}
		return out, err
	}
	// DeleteOwner's condition held: the old item was the owner's session.
	ms, merr := sessionitem.ExpiryMillis(out.Attributes, w.f.opts.ExpiryAttribute)
	w.mu.Lock()
	w.revoked++
	if merr == nil && sessionitem.Expired(ms, time.Now()) {
		w.expired++
	}
	w.mu.Unlock()
	out.Attributes = nil // the session's data goes no further
	return out, err
}

// nothingFound returns nil when the owner index lists nothing for the
// owner, and otherwise an error that says which flag is likely wrong,
// from the index's counts and a sample of the items it listed.
func (w *ownerWatch) nothingFound(ctx context.Context, client *dynamodb.Client, what string) error {
	w.mu.Lock()
	indexed, listed := w.indexed, w.listed
	w.mu.Unlock()
	f := w.f
	switch {
	case indexed == 0:
		return nil // the owner has no session in this table
	case len(listed) == 0:
		return fmt.Errorf("%s: index %s lists %d items for the owner, none with a key under --key-prefix %q; is --key-prefix right?",
			what, f.opts.OwnerIndex, indexed, f.opts.KeyPrefix)
	}
	sample, err := f.sampleKeys(ctx, client, listed)
	if err != nil {
		return err
	}
	if m := f.misnamed(sample); m != nil {
		return fmt.Errorf("%s: index %s lists %d items for the owner, and %s", what, f.opts.OwnerIndex, len(listed), m)
	}
	return nil
}
