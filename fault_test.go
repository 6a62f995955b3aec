package dynamostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

// A fault is what the proxy does to one request instead of forwarding it
// faithfully.
type fault int

const (
	faultNone        fault = iota
	faultResetBefore       // read part of the request, then reset the connection
	faultResetAfter        // forward the request, then reset instead of answering
	faultLatency           // hold the request past the client's deadline, then forward it if the client is still there
	faultStall             // forward the request, then withhold the answer until the client gives up
	fault500               // answer 500 InternalServerError
	fault503               // answer 503 Service Unavailable
	faultThroughput        // answer ProvisionedThroughputExceededException
	faultThrottling        // answer ThrottlingException
)

var faultNames = map[fault]string{
	faultResetBefore: "reset mid-request", faultResetAfter: "reset after the write",
	faultLatency: "latency past the deadline", faultStall: "stalled response",
	fault500: "HTTP 500", fault503: "HTTP 503",
	faultThroughput: "ProvisionedThroughputExceededException", faultThrottling: "ThrottlingException",
}

// opTimeout is every operation's deadline in the fault tests: long enough
// that a busy machine meets it, short enough that a stalled request costs
// little. Latency and stalls last until the client gives up, or faultDelay.
const (
	opTimeout  = time.Second
	faultDelay = time.Minute
)

// A fault scenario runs until the proxy has injected minFaults faults and
// the workers know the state of minKnown tokens (of 48), however long that
// takes on the machine at hand: a fixed window would see too little on a
// busy one.
const (
	minFaults = 24
	minKnown  = 24
)

// faultProxy is an HTTP proxy on loopback in front of the DynamoDB test
// server that injects one kind of fault into a share of requests. It works at
// the HTTP level because the faults that matter here (500, 503, DynamoDB
// throttling errors) are HTTP answers; connection resets it makes by
// hijacking the connection and closing it with SO_LINGER 0.
type faultProxy struct {
	srv      *httptest.Server
	upstream string
	client   *http.Client // to upstream
	kinds    []fault
	share    float64
	delay    time.Duration // added to every request, as network latency
	injected atomic.Int64
	mu       sync.Mutex
	rng      *rand.Rand
}

func newFaultProxy(t testing.TB, upstream string, share float64, kinds ...fault) *faultProxy {
	p := &faultProxy{
		upstream: upstream,
		client:   &http.Client{Transport: &http.Transport{}},
		kinds:    kinds,
		share:    share,
		rng:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		p.srv.Close()
		p.client.CloseIdleConnections()
	})
	return p
}

func (p *faultProxy) pick() fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() >= p.share {
		return faultNone
	}
	return p.kinds[p.rng.IntN(len(p.kinds))]
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	f := p.pick()
	if f != faultNone {
		p.injected.Add(1)
	}
	switch f {
	case faultResetBefore:
		io.CopyN(io.Discard, r.Body, 16)
		reset(w)
		return
	case fault500:
		awsError(w, http.StatusInternalServerError, "com.amazonaws.dynamodb.v20120810#InternalServerError")
		return
	case fault503:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "Service Unavailable")
		return
	case faultThroughput:
		awsError(w, http.StatusBadRequest, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException")
		return
	case faultThrottling:
		awsError(w, http.StatusBadRequest, "com.amazon.coral.availability#ThrottlingException")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	if f == faultLatency {
		// Once the body is read the server notices a client that hangs
		// up, and then the request never reaches DynamoDB. (A request
		// delayed past its deadline and applied later anyway is a hazard
		// of any DynamoDB client; see the README's reliability section.)
		select {
		case <-time.After(faultDelay):
		case <-r.Context().Done():
			return
		}
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.upstream+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		reset(w)
		return
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		reset(w)
		return
	}
	switch f {
	case faultResetAfter:
		reset(w)
		return
	case faultStall:
		select {
		case <-time.After(faultDelay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(answer)
}

// reset closes the client's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0)
	}
	conn.Close()
}

func awsError(w http.ResponseWriter, status int, typ string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"message":"injected by the fault proxy"}`, typ)
}

// faultClient returns a DynamoDB client that goes through the proxy, with an
// HTTP transport of its own so the test can close its connections.
func faultClient(p *faultProxy) (*dynamodb.Client, *http.Transport) {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	c := ddblocal.NewClient(p.srv.URL)
	return dynamodb.New(c.Options(), func(o *dynamodb.Options) {
		o.HTTPClient = &http.Client{Transport: tr}
		// DynamoDB Local's answers, relayed, fail the SDK's CRC32 check.
		o.DisableValidateResponseChecksum = true
	}), tr
}

// sessionModel is what the workers know of one token: its data after the
// last operation that returned nil, unless a later one failed, which makes
// the state unknown until the next success.
type sessionModel struct {
	known   bool
	present bool
	data    []byte

	// A Delete revokes the token: no Commit stores it afterwards. A
	// failed Delete may have revoked it.
	revoked, maybeRevoked bool
}

// TestFaults runs workers doing Commit, Find and Delete through the fault
// proxy, one scenario per kind of fault and one with all of them, on the bare
// store and through a CachedStore, with the sweeper running through the
// proxy too. After each scenario it checks, by a clean client, that every
// acknowledged Commit is readable with its data and every acknowledged Delete
// is gone; during it, that every Find that returned nil agrees with what was
// acknowledged, and that every error names the operation and table, unwraps
// to its cause and carries no token or data. No goroutine may be left.
func TestFaults(t *testing.T) {
	// Not parallel: goleak counts every goroutine the test leaves, so no
	// other test may start any meanwhile.
	ignore := goleak.IgnoreCurrent()
	type scenario struct {
		name  string
		kinds []fault
	}
	var (
		scenarios []scenario
		all       []fault
	)
	for f := faultResetBefore; f <= faultThrottling; f++ {
		scenarios = append(scenarios, scenario{faultNames[f], []fault{f}})
		all = append(all, f)
	}
	scenarios = append(scenarios, scenario{"all of them", all})

	for _, sc := range scenarios {
		for _, cached := range []bool{false, true} {
			name := sc.name
			if cached {
				name += " through CachedStore"
			}
			t.Run(name, func(t *testing.T) {
				runFaultScenario(t, sc.kinds, cached)
			})
		}
	}
	// Goroutines of closed connections end soon, but not at once on a busy
	// machine: give them until a hang.
	hang := time.Now().Add(hangTimeout)
	for err := goleak.Find(ignore); err != nil; err = goleak.Find(ignore) {
		if time.Now().After(hang) {
			t.Fatal(err)
		}
	}
}

func runFaultScenario(t *testing.T, kinds []fault, cached bool) {
	fns := newTable(t)
	proxy := newFaultProxy(t, endpoint, 0.25, kinds...)
	client, tr := faultClient(proxy)
	defer tr.CloseIdleConnections()

	var logs syncBuffer
	store := NewWithCleanupInterval(client, 50*time.Millisecond, append(fns, withLogger(&logs), func(o *Options) {
		o.CompressAbove = 512
	})...)
	var sessions scs.CtxStore = store
	if cached {
		sessions = NewCached(store)
	}

	const workers, tokensPerWorker = 8, 6
	models := make([][]sessionModel, workers)
	var (
		ops, failures, known atomic.Int64
		causes               sync.Map // cause description -> count
		wg                   sync.WaitGroup
		mu                   sync.Mutex
		problems             []string
	)
	enough := func() bool { return proxy.injected.Load() >= minFaults && known.Load() >= minKnown }
	hang := time.Now().Add(hangTimeout)
	// setModel keeps known, the count of tokens whose state is known.
	setModel := func(m *sessionModel, to sessionModel) {
		switch {
		case to.known && !m.known:
			known.Add(1)
		case !to.known && m.known:
			known.Add(-1)
		}
		*m = to
	}
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	tokenOf := func(w, i int) string { return fmt.Sprintf("fault-token-%02d-%02d-SECRET", w, i) }
	for w := range workers {
		models[w] = make([]sessionModel, tokensPerWorker)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for n := 0; !enough(); n++ {
				if time.Now().After(hang) {
					t.Errorf("after %v: %d faults injected, %d tokens known: expected %d and %d", hangTimeout, proxy.injected.Load(), known.Load(), minFaults, minKnown)
					return
				}
				i := rng.IntN(tokensPerWorker)
				token, m := tokenOf(w, i), &models[w][i]
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				var (
					op  string
					err error
				)
				switch r := rng.IntN(10); {
				case r < 4:
					op = "commit"
					// Some sessions large enough to be compressed.
					data := []byte(fmt.Sprintf("SECRET-DATA-%d-%d-%d-", w, i, n))
					if rng.IntN(3) == 0 {
						data = bytes.Repeat(data, 40)
					}
					err = sessions.CommitCtx(ctx, token, data, time.Now().Add(time.Hour))
					switch {
					case m.revoked:
						// Failed or not, it stores nothing: still deleted.
					case err == nil && m.maybeRevoked:
						setModel(m, sessionModel{maybeRevoked: true})
					case err == nil:
						setModel(m, sessionModel{known: true, present: true, data: data})
					}
				case r < 6:
					op = "delete"
					err = sessions.DeleteCtx(ctx, token)
					if err == nil {
						setModel(m, sessionModel{known: true, revoked: true})
					}
				default:
					op = "find"
					var b []byte
					var found bool
					b, found, err = sessions.FindCtx(ctx, token)
					if err == nil && m.known && (found != m.present || !bytes.Equal(b, m.data)) {
						problem("find %s: got found=%v %q, expected found=%v %q", token, found, b, m.present, m.data)
					}
				}
				cancel()
				ops.Add(1)
				if err == nil {
					continue
				}
				switch op {
				case "commit":
					// It may or may not have happened, unless revoked.
					if !m.revoked {
						setModel(m, sessionModel{maybeRevoked: m.maybeRevoked})
					}
				case "delete":
					setModel(m, sessionModel{maybeRevoked: true})
				}
				failures.Add(1)
				causes.Store(checkFaultError(t, problem, op, store.tableName, err, token), true)
			}
		}()
	}
	wg.Wait()
	store.StopCleanup()

	// What was acknowledged is what the table holds.
	verify := NewWithCleanupInterval(newClient(t), 0, fns...)
	verified := 0
	for w := range workers {
		for i, m := range models[w] {
			if !m.known {
				continue
			}
			verified++
			b, found, err := verify.Find(tokenOf(w, i))
			if err != nil {
				t.Fatal(err)
			}
			if found != m.present || !bytes.Equal(b, m.data) {
				problem("after the scenario %s: got found=%v %q, expected found=%v %q", tokenOf(w, i), found, b, m.present, m.data)
			}
		}
	}
	if log := logs.String(); strings.Contains(log, "SECRET") {
		problem("the log carries a token or session data: %s", log)
	}
	var seen []string
	causes.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
	// A fault the SDK's retries absorbed is a pass: failures may be none.
	t.Logf("%d operations, %d failed, %d faults injected, %d sessions verified; causes: %v", ops.Load(), failures.Load(), proxy.injected.Load(), verified, seen)
	if proxy.injected.Load() == 0 || verified == 0 {
		t.Fatalf("%d faults, %d sessions verified: expected some of each", proxy.injected.Load(), verified)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// checkFaultError checks one error from the store and returns a short name
// for its cause.
func checkFaultError(t *testing.T, problem func(string, ...any), op, table string, err error, token string) string {
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("dynamostore: %s in table %q", op, table)) &&
		!strings.Contains(msg, fmt.Sprintf("dynamostore: cached %s in table %q", op, table)) {
		problem("%s: error %q does not name the operation and table", op, msg)
	}
	if strings.Contains(msg, "SECRET") || strings.Contains(msg, token) {
		problem("%s: error carries a token or session data: %q", op, msg)
	}
	var (
		opErr      *smithy.OperationError
		throughput *types.ProvisionedThroughputExceededException
		apiErr     smithy.APIError
		respErr    *awshttp.ResponseError
		netErr     *net.OpError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline exceeded"
	case errors.As(err, &throughput):
		return "ProvisionedThroughputExceededException"
	case errors.As(err, &apiErr):
		return apiErr.ErrorCode()
	case errors.As(err, &netErr):
		return "network: " + lastColon(netErr.Err.Error())
	case errors.As(err, &respErr):
		return fmt.Sprintf("HTTP %d", respErr.HTTPStatusCode())
	case errors.As(err, &opErr):
		return "operation error: " + strings.TrimSpace(lastColon(opErr.Err.Error()))
	}
	problem("%s: error %q does not unwrap to a DynamoDB or context cause", op, msg)
	return "unknown"
}

func lastColon(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// TestThrottleErrorsUnwrap sends every request into a throttling error with
// the SDK's retries off, so the error reaches the caller as DynamoDB sent it:
// it must name the operation and table and unwrap to the API error.
func TestThrottleErrorsUnwrap(t *testing.T) {
	fns := newTable(t)
	for _, c := range []struct {
		kind fault
		code string
	}{{faultThroughput, "ProvisionedThroughputExceededException"}, {faultThrottling, "ThrottlingException"}} {
		proxy := newFaultProxy(t, endpoint, 1, c.kind)
		client, tr := faultClient(proxy)
		client = dynamodb.New(client.Options(), func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
		s := NewWithCleanupInterval(client, 0, fns...)
		_, _, errFind := s.Find("token")
		errCommit := s.Commit("token", []byte("data"), time.Now().Add(time.Hour))
		errDelete := s.Delete("token")
		for op, err := range map[string]error{"find": errFind, "commit": errCommit, "delete": errDelete} {
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != c.code {
				t.Fatalf("%s: got %v: expected it to unwrap to %s", op, err, c.code)
			}
			if want := fmt.Sprintf("dynamostore: %s in table %q", op, s.tableName); !strings.Contains(err.Error(), want) {
				t.Fatalf("%s: got %q: expected %q", op, err, want)
			}
		}
		var throughput *types.ProvisionedThroughputExceededException
		if got := errors.As(errCommit, &throughput); got != (c.kind == faultThroughput) {
			t.Fatalf("got %v: expected errors.As to the SDK's typed exception %v", errCommit, !got)
		}
		tr.CloseIdleConnections()
	}
}
