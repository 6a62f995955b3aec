package ddblocal

import (
	"bufio"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// StartRedis starts Debian's redis-server on a free loopback port, without
// persistence, for the test's lifetime, and returns its address once it
// answers a PING. `make test` installs redis-server. The caller makes the
// client (package rediscache's tests use go-redis, which this package does
// not import, so that the root module's tests do not require it).
func StartRedis(tb testing.TB) string {
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
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Only a hang reaches this deadline.
	hang := time.Now().Add(2 * time.Minute)
	for !pong(addr, hang) {
		if time.Now().After(hang) {
			tb.Fatal("redis-server did not answer in 2 minutes")
		}
		time.Sleep(10 * time.Millisecond) // a poll: nothing announces readiness
	}
	return addr
}

// pong reports whether the Redis server at addr answers PING with PONG
// before the deadline.
func pong(addr string, deadline time.Time) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}
