package main

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ddbProxy is the test endpoint behind an HTTP proxy that records each
// request's operation and JSON body, may hold a request or change it on its
// way, and may change the answer on its way back, as DynamoDB would answer
// on a larger table or a slower index. It speaks DynamoDB's JSON protocol
// only: the operation is the X-Amz-Target header's.
type ddbProxy struct {
	url string

	// hold, when set, runs before a request is forwarded and may block
	// (until ctx, the request's, ends, for one); it returns false to drop
	// the request unanswered.
	hold func(ctx context.Context, op string, body map[string]any) bool
	// request and response, when set, change a request's body before it
	// is forwarded and a successful answer's body before it returns.
	request, response func(op string, body map[string]any)
	// holdAnswer, when set, runs once DynamoDB has answered a request (and
	// so applied it), before the answer is passed on; it returns false to
	// drop the answer, as a connection cut at that moment would.
	holdAnswer func(ctx context.Context, op string, body map[string]any) bool

	mu    sync.Mutex
	calls []proxyCall
	stop  chan struct{}
}

// proxyCall is one request the proxy received.
type proxyCall struct {
	op   string
	body map[string]any
}

// newProxy starts a proxy in front of the test endpoint; set its hooks
// before the first request.
func newProxy(t *testing.T) *ddbProxy {
	t.Helper()
	p := &ddbProxy{stop: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(p.serve(t)))
	t.Cleanup(func() { close(p.stop); srv.Close() })
	p.url = srv.URL
	return p
}

func (p *ddbProxy) serve(t *testing.T) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		op := r.Header.Get("X-Amz-Target")
		op = op[strings.LastIndex(op, ".")+1:]
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("proxy: %s: %v", op, err)
			return
		}
		p.mu.Lock()
		p.calls = append(p.calls, proxyCall{op, clone(body)})
		p.mu.Unlock()
		if p.hold != nil && !p.hold(r.Context(), op, body) {
			return
		}
		if p.request != nil {
			p.request(op, body)
			raw, _ = json.Marshal(body)
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, endpoint, bytes.NewReader(raw))
		if err != nil {
			t.Errorf("proxy: %v", err)
			return
		}
		for _, h := range []string{"Authorization", "X-Amz-Target", "X-Amz-Date", "Content-Type", "X-Amz-Security-Token"} {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // the client gave up
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		if err != nil {
			return
		}
		if p.holdAnswer != nil && !p.holdAnswer(r.Context(), op, body) {
			return
		}
		if p.response != nil && resp.StatusCode == http.StatusOK {
			var out map[string]any
			if err := json.Unmarshal(answer, &out); err != nil {
				t.Errorf("proxy: %s answer: %v", op, err)
				return
			}
			p.response(op, out)
			answer, _ = json.Marshal(out)
		}
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(answer)), 10))
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	}
}

// published makes the hooks set so far visible to the proxy's handlers,
// for a client in another process: the race detector cannot see that its
// requests follow the hooks.
func (p *ddbProxy) published() {
	p.mu.Lock()
	defer p.mu.Unlock()
}

// requests returns the bodies of the requests for op so far.
func (p *ddbProxy) requests(op string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var bodies []map[string]any
	for _, c := range p.calls {
		if c.op == op {
			bodies = append(bodies, c.body)
		}
	}
	return bodies
}

// clone copies a JSON body, so that hooks that change it do not change what
// was recorded.
func clone(body map[string]any) map[string]any {
	b, _ := json.Marshal(body)
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

// proxyCmd runs the tool with args against the proxy.
func proxyCmd(ctx context.Context, p *ddbProxy, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, append(args, "--endpoint", p.url), &out, &errOut)
	return code, out.String(), errOut.String()
}
