// Command stress runs `make test` several times in a row while CPU hogs keep
// every core busy, the way a shared CI machine is, and prints "N passed, M
// failed". A suite that passes here does not depend on timing luck.
//
//	go -C internal/stress build -o ../../bin/ . && bin/stress -runs 5
//
// `make stress` runs it so, from the repository root, where `make test`
// is: it is a module of its own, so `go run` would run it in its own
// directory. Each run's output goes to .stress/run-N.log; the
// tail of a failed run's log is printed too. The hogs are goroutines of this
// process, so they end with it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	runs := flag.Int("runs", 5, "how many times to run `make test`")
	hogs := flag.Int("hogs", runtime.NumCPU(), "busy goroutines, one per core by default")
	logDir := flag.String("logs", ".stress", "directory for each run's output")
	flag.Parse()
	if *runs < 1 || *hogs < 0 {
		fmt.Fprintln(os.Stderr, "stress: -runs must be at least 1 and -hogs at least 0")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if failed := run(ctx, *runs, *hogs, *logDir); failed > 0 {
		os.Exit(1)
	}
}

// run starts the hogs, runs `make test` runs times and returns how many runs
// failed.
func run(ctx context.Context, runs, hogs int, logDir string) (failed int) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "stress:", err)
		return runs
	}
	// GOMAXPROCS stays at the core count, so the hogs compete with the
	// tests for every core without starving this process of a thread.
	hogCtx, stopHogs := context.WithCancel(ctx)
	defer stopHogs()
	for range hogs {
		go func() {
			for n := 0; ; n++ {
				if n%1_000_000 == 0 && hogCtx.Err() != nil {
					return
				}
			}
		}()
	}
	fmt.Printf("stress: %d runs of `make test` with %d CPU hogs on %d cores\n", runs, hogs, runtime.NumCPU())
	passed := 0
	for i := 1; i <= runs && ctx.Err() == nil; i++ {
		logPath := filepath.Join(logDir, fmt.Sprintf("run-%d.log", i))
		start := time.Now()
		err := makeTest(ctx, logPath)
		elapsed := time.Since(start).Round(time.Second)
		if err == nil {
			passed++
			fmt.Printf("run %d: passed in %v (%s)\n", i, elapsed, logPath)
			continue
		}
		failed++
		fmt.Printf("run %d: FAILED in %v: %v (%s); its last lines:\n%s\n", i, elapsed, err, logPath, tail(logPath, 40))
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	return failed
}

// makeTest runs `make test` with its output in logPath.
func makeTest(ctx context.Context, logPath string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "test")
	cmd.Stdout, cmd.Stderr = f, f
	return cmd.Run()
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	lines = lines[max(len(lines)-n, 0):]
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString("    ")
		sb.Write(l)
		sb.WriteByte('\n')
	}
	return sb.String()
}
