// Command soak runs a bounded soak test: workers doing a web application's
// mix of Find, Commit and Delete through a CachedStore over a DynamoStore on
// a local DynamoDB, with the sweeper running, for a set time. It reports
// operations, errors and heap, and exits 1 when any operation failed or read
// back the wrong data, or when the heap grew after warm-up.
//
//	go -C internal/soak run . -duration 2m
//
// `make soak` runs it; `make test` runs it for 20 seconds.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

func main() {
	duration := flag.Duration("duration", 2*time.Minute, "how long to run")
	workers := flag.Int("workers", 32, "concurrent workers")
	sessions := flag.Int("sessions", 5000, "distinct session tokens (the cache holds 10,000)")
	flag.Parse()
	if err := run(*duration, *workers, *sessions); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, workers, sessions int) error {
	srv, err := ddblocal.Start()
	if err != nil {
		return err
	}
	defer srv.Stop()
	client := ddblocal.NewClient(srv.Endpoint)
	ctx := context.Background()
	opts := func(o *dynamostore.Options) {
		o.TableName = "soak"
		o.CompressAbove = 1024
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	quiet := func(o *dynamostore.Options) { o.Logger = slog.New(slog.DiscardHandler) }
	if err := dynamostore.CreateTable(ctx, client, opts, quiet); err != nil {
		return err
	}
	store := dynamostore.NewWithCleanupInterval(client, 5*time.Second, opts)
	defer store.StopCleanup()
	cached := dynamostore.NewCached(store)

	var (
		ops, failures, mismatches atomic.Int64
		stop                      = make(chan struct{})
		wg, filled                sync.WaitGroup
	)
	perWorker := max(sessions/workers, 1)
	for w := range workers {
		wg.Add(1)
		filled.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			// Each worker owns its tokens, so it knows what each holds.
			want := make([][]byte, perWorker)
			unknown := make([]bool, perWorker) // after a failed write
			gen := make([]int, perWorker)      // logouts so far, by slot
			// Every session first, so the cache and want hold all of
			// them before the heap is measured: how many a run reaches
			// would otherwise depend on the machine's speed.
			for i := range perWorker {
				data := session(rng, i)
				if err := cached.CommitCtx(ctx, fmt.Sprintf("soak-%d-%d", w, i), data, time.Now().Add(time.Hour)); err != nil {
					failures.Add(1)
					unknown[i] = true
					fmt.Fprintln(os.Stderr, "soak: operation failed:", err)
				}
				want[i] = data
				ops.Add(1)
			}
			filled.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(perWorker)
				// A logout revokes its token: the next session in the
				// slot has a new one, as after a log in.
				token := fmt.Sprintf("soak-%d-%d", w, i)
				if gen[i] > 0 {
					token = fmt.Sprintf("soak-%d-%d-%d", w, i, gen[i])
				}
				var err error
				r := rng.IntN(100)
				switch {
				case r < 75: // most requests only read the session
					var b []byte
					var found bool
					b, found, err = cached.FindCtx(ctx, token)
					if err == nil && !unknown[i] && (found != (want[i] != nil) || !bytes.Equal(b, want[i])) {
						mismatches.Add(1)
					}
				case r < 95: // a request that changed it
					data := session(rng, n)
					if err = cached.CommitCtx(ctx, token, data, time.Now().Add(time.Hour)); err == nil {
						want[i], unknown[i] = data, false
					}
				default: // logout
					if err = cached.DeleteCtx(ctx, token); err == nil {
						want[i], unknown[i] = nil, false
						gen[i]++
					}
				}
				ops.Add(1)
				if err != nil {
					failures.Add(1)
					unknown[i] = r >= 75 || unknown[i]
					fmt.Fprintln(os.Stderr, "soak: operation failed:", err)
				}
			}
		}()
	}

	filled.Wait()
	// Live heap after a collection, every second.
	start := time.Now()
	warm := start.Add(duration / 4)
	var (
		peak, atWarm, last uint64
		samples            []uint64
	)
	tick := time.NewTicker(time.Second)
	for now := range tick.C {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		last = m.HeapAlloc
		peak = max(peak, last)
		samples = append(samples, last)
		if atWarm == 0 && now.After(warm) {
			atWarm = last
		}
		if now.Sub(start) >= duration {
			break
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	// Flat after warm-up: the second half's highest sample within 25% (and
	// 4 MB, for noise on a small heap) of the warm-up level.
	var lateMax uint64
	for _, s := range samples[len(samples)/2:] {
		lateMax = max(lateMax, s)
	}
	flat := float64(lateMax) <= float64(atWarm)*1.25+4<<20
	mb := func(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
	stats := cached.Stats()
	fmt.Printf("soak on %s: %d workers, %d sessions, %s\n", ddblocal.Backend(), workers, sessions, elapsed.Round(time.Second))
	fmt.Printf("operations: %d (%.0f per second), errors: %d, wrong reads: %d\n",
		ops.Load(), float64(ops.Load())/elapsed.Seconds(), failures.Load(), mismatches.Load())
	fmt.Printf("cache: %d hits, %d misses\n", stats.Hits, stats.Misses)
	fmt.Printf("live heap: %s after warm-up, %s peak, %s at the end, second-half high %s (flat: %v)\n",
		mb(atWarm), mb(peak), mb(last), mb(lateMax), flat)
	switch {
	case failures.Load() > 0 || mismatches.Load() > 0:
		return fmt.Errorf("%d errors and %d wrong reads: expected none", failures.Load(), mismatches.Load())
	case !flat:
		return fmt.Errorf("heap grew after warm-up, from %s to %s", mb(atWarm), mb(lateMax))
	}
	return nil
}

// session returns session data of a realistic spread of sizes: most a few
// hundred bytes, some a few kilobytes.
func session(rng *rand.Rand, n int) []byte {
	size := 200 + rng.IntN(400)
	if rng.IntN(10) == 0 {
		size = 2000 + rng.IntN(4000)
	}
	b := make([]byte, 0, size)
	for len(b) < size {
		b = fmt.Appendf(b, "key%d=value-%d-%d;", len(b), n, rng.IntN(1000))
	}
	return b[:size]
}
