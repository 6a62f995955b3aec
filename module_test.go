package dynamostore_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// forbiddenModules are the modules that the tools, the example and
// rediscache need and an application importing the library alone must
// not get: a module path with one of these prefixes, or naming
// Prometheus anywhere, fails TestModuleGraph. The nested modules of this
// repository are among them: the library's module requires none.
var forbiddenModules = []string{
	"github.com/chromedp/",
	"github.com/creack/pty",
	"github.com/go-chi/chi",
	"github.com/tink-crypto/tink-go",
	"github.com/hashicorp/golang-lru",
	"github.com/redis/go-redis",
	"github.com/alexedwards/scs/goredisstore",
	"github.com/dynamostore/dynamostore/",
}

// TestModuleGraph: an application that imports the library alone gets none
// of the other modules' dependencies in its module graph (`go list -m
// all`), tests of the library's module included, since a dependency's
// go.mod requirements stay in the graph whatever it is used for. It runs
// the go command on a module of its own, so it needs the module proxy, as
// `go test` does.
func TestModuleGraph(t *testing.T) {
	t.Parallel()
	goCmd, err := exec.LookPath("go") // go test puts its own GOROOT/bin first in PATH
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/minimal\n\ngo 1.26.0\n\nreplace github.com/dynamostore/dynamostore => " + root + "\n",
		"main.go": `package main

import "github.com/dynamostore/dynamostore"

func main() {
	store := dynamostore.New(nil, func(o *dynamostore.Options) { o.TableName = "sessions" })
	defer store.StopCleanup()
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Only a hang reaches this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) string {
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				stderr = ee.Stderr
			}
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return string(out)
	}
	run("mod", "tidy")
	modules := strings.Split(strings.TrimSpace(run("list", "-m", "all")), "\n")
	t.Logf("go list -m all: %d modules, the application's own included", len(modules))
	var forbidden []string
	for _, line := range modules {
		path, _, _ := strings.Cut(line, " ")
		if strings.Contains(path, "prometheus") {
			forbidden = append(forbidden, line)
			continue
		}
		for _, prefix := range forbiddenModules {
			if strings.HasPrefix(path, prefix) {
				forbidden = append(forbidden, line)
				break
			}
		}
	}
	if len(forbidden) > 0 {
		t.Fatalf("an application importing only the library gets modules it must not:\n%s\n(all of its %d modules:\n%s)",
			strings.Join(forbidden, "\n"), len(modules), strings.Join(modules, "\n"))
	}
}
