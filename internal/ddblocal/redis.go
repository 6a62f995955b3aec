package ddblocal

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedis starts Debian's redis-server on a free loopback port, without
// persistence, for the test's lifetime, and returns a client of it. `make
// test` installs redis-server.
func StartRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal("redis-server not found: run `make test`, which installs it, or apt-get install redis-server")
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(path, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	client := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))})
	tb.Cleanup(func() { client.Close() })
	// Only a hang reaches this deadline.
	hang := time.Now().Add(2 * time.Minute)
	for client.Ping(context.Background()).Err() != nil {
		if time.Now().After(hang) {
			tb.Fatal("redis-server did not answer in 2 minutes")
		}
		time.Sleep(10 * time.Millisecond) // a poll: nothing announces readiness
	}
	return client
}
