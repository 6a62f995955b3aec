package ddblocal

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"
)

// SetupTimeout bounds each wait of the tests for something DynamoDB does: a
// table or its owner index to become ACTIVE. DynamoDB Local and dynalite
// take well under a second; a DynamoDB of your own (EnvEndpoint) takes
// seconds to a minute. An endpoint that never gets there fails the test
// after this long, with a message naming what did not happen, rather than
// hanging it.
const SetupTimeout = 3 * time.Minute

// RequestTimeout bounds each HTTP request of a client from NewClient, so a
// misbehaving endpoint that accepts a connection and never answers fails
// the test rather than hanging it. The tests hold responses open in
// wrapping Clients, above HTTP, never here.
const RequestTimeout = 2 * time.Minute

// Setup runs fn, which sets up what the test needs (what, such as "table
// t1 and its owner index"), with a deadline of SetupTimeout, and fails the
// test if it returns an error, saying what did not happen in time when the
// deadline ended it.
func Setup(tb TB, what string, fn func(ctx context.Context) error) {
	tb.Helper()
	SetupWithin(tb, SetupTimeout, what, fn)
}

// SetupWithin is Setup with a deadline of d.
func SetupWithin(tb TB, d time.Duration, what string, fn func(ctx context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := fn(ctx)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		tb.Fatalf("%s: not ready within %v, so the endpoint is not doing what DynamoDB does: %v", what, d, err)
	default:
		tb.Fatalf("%s: %v", what, err)
	}
}

// Rewrite starts a proxy on a free loopback port in front of endpoint that
// passes each request on and gives the client the answer as rewrite returns
// it, with its checksum made to match; target is the operation, such as
// "DynamoDB_20120810.DescribeTable". It returns the proxy's endpoint and a
// function that stops it. Tests use it to make an endpoint misbehave in a
// way DynamoDB could (an index that stays CREATING).
func Rewrite(endpoint string, rewrite func(target string, body []byte) []byte) (string, func(), error) {
	up, err := url.Parse(endpoint)
	if err != nil {
		return "", nil, fmt.Errorf("ddblocal: rewrite: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("ddblocal: rewrite: %w", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(up)
	proxy.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = rewrite(resp.Request.Header.Get("X-Amz-Target"), body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
		return nil
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }, nil
}
