package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	gotypes "go/types"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

// The README's snippets are tested as a user would paste them: every Go
// block is built, in a module of its own that requires this repository, and
// the programs are run against the tests' DynamoDB with only the
// environment the README's "Run it against DynamoDB Local" tells a user to
// set. A Go block is one of:
//
//   - a program: it starts with a package clause;
//   - a change to the Use program: imports, then statements, each of which
//     replaces the statement of the Use program's main that assigns the same
//     variable (err aside), as the README says.

// hang is how long a test waits for something that only a hang delays.
const hang = 2 * time.Minute

// readmeBlock is a fenced block of README.md.
type readmeBlock struct {
	heading string // the nearest heading above it
	line    int    // of its opening fence
	lang    string // the fence's info string
	text    string
}

func (b readmeBlock) String() string {
	return fmt.Sprintf("README.md:%d, under %q", b.line, b.heading)
}

// readmeBlocks returns the fenced blocks of README.md.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var heading string
	var open *readmeBlock
	for i, line := range strings.Split(string(readme), "\n") {
		switch {
		case open != nil && line == "```":
			blocks = append(blocks, *open)
			open = nil
		case open != nil:
			open.text += line + "\n"
		case strings.HasPrefix(line, "```"):
			open = &readmeBlock{heading: heading, line: i + 1, lang: strings.TrimPrefix(line, "```")}
		case strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
		}
	}
	if open != nil {
		t.Fatalf("%s: the block is never closed", open)
	}
	return blocks
}

// section returns the blocks under heading, of language lang.
func section(blocks []readmeBlock, heading, lang string) []readmeBlock {
	var in []readmeBlock
	for _, b := range blocks {
		if b.heading == heading && b.lang == lang {
			in = append(in, b)
		}
	}
	return in
}

// readmeEnv returns the variables that the README's "Run it against
// DynamoDB Local" exports, with the tests' endpoint for
// AWS_ENDPOINT_URL_DYNAMODB.
func readmeEnv(t *testing.T, blocks []readmeBlock) []string {
	t.Helper()
	var env []string
	for _, b := range section(blocks, "Run it against DynamoDB Local", "sh") {
		for line := range strings.SplitSeq(b.text, "\n") {
			vars, ok := strings.CutPrefix(line, "export ")
			if !ok {
				continue
			}
			for _, v := range strings.Fields(vars) {
				name, _, ok := strings.Cut(v, "=")
				if !ok {
					t.Fatalf("%s: %q is not NAME=value", b, v)
				}
				if name == "AWS_ENDPOINT_URL_DYNAMODB" {
					v = name + "=" + endpoint
				}
				env = append(env, v)
			}
		}
	}
	if !slices.ContainsFunc(env, func(v string) bool { return strings.HasPrefix(v, "AWS_ENDPOINT_URL_DYNAMODB=") }) {
		t.Fatal(`the README's "Run it against DynamoDB Local" exports no AWS_ENDPOINT_URL_DYNAMODB`)
	}
	return env
}

// snippet is a Go block as the test builds it.
type snippet struct {
	block   readmeBlock
	dir     string // in the snippets' module
	program bool   // a whole program, as written; else a change to Use
	src     string // the program built
}

// listenAddr matches an address a program listens on or dials, such as
// ":4000" or "redis:6379", as a Go string.
var listenAddr = regexp.MustCompile(`"[A-Za-z0-9.-]*:[0-9]+"`)

// addrFile lets the test move a program's fixed addresses to free ports:
// each address literal is replaced by a call of readmeTestAddr.
const addrFile = `package main

import (
	"os"
	"strings"
)

// readmeTestAddr returns addr, or the address the test gives for its port in
// README_TEST_ADDR_<port>.
func readmeTestAddr(addr string) string {
	if a := os.Getenv("README_TEST_ADDR_" + addr[strings.LastIndex(addr, ":")+1:]); a != "" {
		return a
	}
	return addr
}
`

// TestREADMESnippets builds every Go block of the README, checks that each
// is gofmt'd, and runs the programs: the Use program, each change to it,
// the log-out-everywhere program and the keyset program.
func TestREADMESnippets(t *testing.T) {
	blocks := readmeBlocks(t)
	env := readmeEnv(t, blocks)

	var snippets []*snippet
	var use *snippet
	for _, b := range blocks {
		if b.lang != "go" {
			continue
		}
		s := &snippet{block: b, dir: fmt.Sprintf("line%d", b.line)}
		_, err := parser.ParseFile(token.NewFileSet(), "", b.text, parser.PackageClauseOnly)
		s.program = err == nil
		if s.program {
			s.src = b.text
			checkFormatted(t, b, b.text)
		}
		if b.heading == "Use" && s.program {
			use = s
		}
		snippets = append(snippets, s)
	}
	if use == nil {
		t.Fatal(`no Go program under the README's heading "Use"`)
	}
	for _, s := range snippets {
		if s.program {
			continue
		}
		imports, stmts := splitChange(t, s.block)
		checkFormatted(t, s.block, imports)
		checkFormatted(t, s.block, stmts)
		s.src = applyChange(t, s.block, use.src, imports, stmts)
	}
	var logout, keyset *snippet
	for _, s := range snippets {
		switch {
		case s.program && s.block.heading == "Log a user out everywhere":
			logout = s
		case s.program && strings.Contains(s.src, "keyset.NewHandle("):
			keyset = s
		}
	}
	if logout == nil {
		t.Fatal(`no Go program under the README's heading "Log a user out everywhere"`)
	}
	if keyset == nil {
		t.Fatal(`no Go program that makes a keyset (keyset.NewHandle) under the README's heading "Sealed sessions and hashed tokens"`)
	}

	bin := buildSnippets(t, snippets)
	keysetOut, err := exec.Command(filepath.Join(bin, keyset.dir)).Output()
	if err != nil {
		t.Fatalf("%s: the keyset program: %v", keyset.block, err)
	}
	env = append(env, "SESSION_KEYSET="+string(keysetOut))
	redis := ddblocal.StartRedis(t)

	t.Run("Use", func(t *testing.T) { testUse(t, filepath.Join(bin, use.dir), use.block, blocks, env) })
	for _, s := range snippets {
		if s.program {
			continue
		}
		t.Run(s.block.heading, func(t *testing.T) {
			testChange(t, filepath.Join(bin, s.dir), s, append(env, "README_TEST_ADDR_6379="+redis))
		})
	}
	t.Run("LogOutEverywhere", func(t *testing.T) { testLogOutEverywhere(t, filepath.Join(bin, logout.dir), logout.block, env) })
}

// checkFormatted fails unless src, a block or a part of one, is as gofmt
// formats it.
func checkFormatted(t *testing.T, b readmeBlock, src string) {
	t.Helper()
	if src == "" {
		return
	}
	formatted, err := format.Source([]byte(src))
	if err != nil {
		t.Errorf("%s: does not parse: %v\n%s", b, err, src)
		return
	}
	if string(formatted) != src {
		t.Errorf("%s: not gofmt'd; gofmt makes it\n%s", b, formatted)
	}
}

// splitChange returns the import declarations that begin a change and the
// statements after them.
func splitChange(t *testing.T, b readmeBlock) (imports, stmts string) {
	t.Helper()
	rest := b.text
	for strings.HasPrefix(rest, "import ") {
		end := strings.Index(rest, "\n")
		if strings.HasPrefix(rest, "import (") {
			end = strings.Index(rest, "\n)\n") + 2
		}
		if end < 2 {
			t.Fatalf("%s: an import declaration that does not end", b)
		}
		imports += rest[:end+1]
		rest = strings.TrimLeft(rest[end+1:], "\n")
	}
	if imports == "" {
		t.Errorf("%s: neither a program (package main) nor a change with its imports", b)
	}
	return imports, rest
}

// applyChange returns the Use program use with the change made of imports and
// stmts: the statements of main that assign a variable the change assigns
// are replaced by the change's statements, and its imports are added.
func applyChange(t *testing.T, b readmeBlock, use, imports, stmts string) string {
	t.Helper()
	fset := token.NewFileSet()
	change, err := parser.ParseFile(fset, "", "package main\n"+imports+"func _() {\n"+stmts+"}\n", 0)
	if err != nil {
		t.Fatalf("%s: does not parse as imports and statements: %v", b, err)
	}
	assigned := map[string]bool{}
	for _, st := range change.Decls[len(change.Decls)-1].(*ast.FuncDecl).Body.List {
		for _, v := range targets(st) {
			assigned[v] = true
		}
	}
	prog, err := parser.ParseFile(fset, "", use, 0)
	if err != nil {
		t.Fatal(err)
	}
	var main *ast.FuncDecl
	for _, d := range prog.Decls {
		if f, ok := d.(*ast.FuncDecl); ok && f.Name.Name == "main" {
			main = f
		}
	}
	offset := func(p token.Pos) int { return fset.Position(p).Offset }
	var out strings.Builder
	last := 0
	replaced := false
	for _, st := range main.Body.List {
		if !slices.ContainsFunc(targets(st), func(v string) bool { return assigned[v] }) {
			continue
		}
		out.WriteString(use[last:offset(st.Pos())])
		if !replaced {
			out.WriteString(stmts)
			replaced = true
		}
		last = offset(st.End())
	}
	if !replaced {
		t.Fatalf("%s: assigns nothing that the Use program's main assigns, so the test cannot tell where it goes", b)
	}
	out.WriteString(use[last:])
	src := out.String()

	// The imports: the Use program's and the change's.
	var specs []string
	for _, f := range []*ast.File{prog, change} {
		for _, spec := range f.Imports {
			s := spec.Path.Value
			if spec.Name != nil {
				s = spec.Name.Name + " " + s
			}
			if !slices.Contains(specs, s) {
				specs = append(specs, s)
			}
		}
	}
	decl := prog.Decls[0].(*ast.GenDecl)
	src = src[:offset(decl.Pos())] + "import (\n" + strings.Join(specs, "\n") + "\n)" + src[offset(decl.End()):]
	formatted, err := format.Source([]byte(src))
	if err != nil {
		t.Fatalf("%s: the Use program with this change does not parse: %v\n%s", b, err, src)
	}
	return string(formatted)
}

// targets returns what st assigns, err and _ aside.
func targets(st ast.Stmt) []string {
	a, ok := st.(*ast.AssignStmt)
	if !ok {
		return nil
	}
	var vs []string
	for _, e := range a.Lhs {
		if v := gotypes.ExprString(e); v != "err" && v != "_" {
			vs = append(vs, v)
		}
	}
	return vs
}

// buildSnippets writes every snippet into one module of its own that
// requires this repository, builds them all with one go build, and returns
// the directory of the programs. A snippet that does not build fails the
// test with its place in the README.
func buildSnippets(t *testing.T, snippets []*snippet) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The repository's own requirements and sums, so that go mod tidy
	// picks the versions the repository is tested with and needs the
	// network for nothing the module cache lacks.
	var requires, sums []string
	for _, m := range []string{".", "example", "cmd/dynamostore", "rediscache"} {
		gomod, err := os.ReadFile(filepath.Join(root, m, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(gomod), "\n") {
			f := strings.Fields(strings.TrimPrefix(line, "require "))
			if len(f) >= 2 && strings.Contains(f[0], ".") && strings.HasPrefix(f[1], "v") && !strings.HasPrefix(f[0], "github.com/dynamostore/") &&
				!slices.ContainsFunc(requires, func(r string) bool { return strings.HasPrefix(r, f[0]+" ") }) {
				requires = append(requires, f[0]+" "+f[1])
			}
		}
		gosum, err := os.ReadFile(filepath.Join(root, m, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, string(gosum))
	}
	// This repository's modules, as they are in this checkout.
	var replaces []string
	for _, m := range []string{"", "/rediscache"} {
		requires = append(requires, "github.com/dynamostore/dynamostore"+m+" v0.0.0-00010101000000-000000000000")
		replaces = append(replaces, "github.com/dynamostore/dynamostore"+m+" => "+root+m)
	}
	gomod := "module readmesnippets\n\ngo 1.26.0\n\nrequire (\n\t" + strings.Join(requires, "\n\t") +
		"\n)\n\nreplace (\n\t" + strings.Join(replaces, "\n\t") + "\n)\n"
	write(t, filepath.Join(dir, "go.mod"), gomod)
	write(t, filepath.Join(dir, "go.sum"), strings.Join(sums, ""))
	for _, s := range snippets {
		src := listenAddr.ReplaceAllStringFunc(s.src, func(addr string) string { return "readmeTestAddr(" + addr + ")" })
		write(t, filepath.Join(dir, s.dir, "main.go"), src)
		write(t, filepath.Join(dir, s.dir, "addr.go"), addrFile)
	}
	goCmd := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		failed := false
		for _, s := range snippets {
			if regexp.MustCompile(`\b` + s.dir + `\b`).Match(out) {
				failed = true
				t.Errorf("%s: does not build as %s:\n%s\n%s", s.block, map[bool]string{true: "written", false: "a change to the Use program"}[s.program], out, numbered(s.src))
			}
		}
		if !failed {
			t.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.FailNow()
	}
	goCmd("mod", "tidy")
	goCmd("build", "-o", filepath.Join(dir, "bin")+string(filepath.Separator), "./...")
	return filepath.Join(dir, "bin")
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// numbered returns src with line numbers, for messages.
func numbered(src string) string {
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSuffix(src, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, line)
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer for a process's output, safe to read while
// the process writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// program is a README program running.
type program struct {
	base   string            // its URL, for its ":4000"
	ports  map[string]string // its fixed ports, and the addresses it has instead
	output *syncBuffer
	stop   func() // kills it and waits until it has exited
}

// start runs the program bin with env, an empty HOME and a free port for
// each of ports (its fixed ports, such as "4000"), waits until it accepts
// connections on the first, and stops it when the test ends.
func start(t *testing.T, bin string, env []string, ports ...string) *program {
	t.Helper()
	p := &program{ports: map[string]string{}, output: new(syncBuffer)}
	cmd := exec.Command(bin)
	cmd.Env = append(slices.Clone(env), "HOME="+t.TempDir())
	for _, port := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.ports[port] = l.Addr().String()
		l.Close()
		cmd.Env = append(cmd.Env, "README_TEST_ADDR_"+port+"="+p.ports[port])
	}
	p.base = "http://" + p.ports[ports[0]]
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.stop = sync.OnceFunc(func() { cmd.Process.Kill(); <-exited })
	t.Cleanup(p.stop)
	deadline := time.Now().Add(hang)
	for {
		c, err := net.Dial("tcp", p.ports[ports[0]])
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it served:\n%s", filepath.Base(bin), p.output)
		case <-time.After(20 * time.Millisecond): // a pause between tries, bounded by deadline
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not serve within %v:\n%s", filepath.Base(bin), hang, p.output)
		}
	}
}

// request sends a request with c and returns the status and body.
func request(t *testing.T, c *http.Client, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: hang} // only a hang reaches it: the test fails, naming the request
}

// putAndGet drives the Use program's two handlers with c and fails unless
// the session holds the message.
func putAndGet(t *testing.T, b readmeBlock, c *http.Client, p *program) {
	t.Helper()
	if code, body := request(t, c, "GET", p.base+"/put"); code != http.StatusOK {
		t.Fatalf("%s: GET /put: got %d %q: expected 200; the program printed:\n%s", b, code, body, p.output)
	}
	getMessage(t, b, c, p)
}

func getMessage(t *testing.T, b readmeBlock, c *http.Client, p *program) {
	t.Helper()
	if code, body := request(t, c, "GET", p.base+"/get"); code != http.StatusOK || body != "Hello from a session!" {
		t.Fatalf("%s: GET /get: got %d %q: expected 200 and the message /put stored; the program printed:\n%s", b, code, body, p.output)
	}
}

// cookie returns c's session cookie for base.
func cookie(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, k := range c.Jar.Cookies(u) {
		if k.Name == "session" {
			return k.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// digits masks what changes from run to run in a log line.
var digits = regexp.MustCompile(`[0-9]+`)

// testUse runs the Use program twice on the same table: the session it
// stores survives the restart, and everything it prints is shown in the
// README's "Run it against DynamoDB Local".
func testUse(t *testing.T, bin string, b readmeBlock, blocks []readmeBlock, env []string) {
	var shown []string
	for _, tb := range section(blocks, "Run it against DynamoDB Local", "text") {
		for line := range strings.SplitSeq(strings.TrimSpace(tb.text), "\n") {
			shown = append(shown, digits.ReplaceAllString(line, "N"))
		}
	}
	c := browser()
	var outputs []string
	for run := range 2 {
		p := start(t, bin, env, "4000")
		if run == 0 {
			putAndGet(t, b, c, p)
			token := cookie(t, c, p.base)
			if _, found, err := dynamostore.NewWithCleanupInterval(ddblocal.NewClient(endpoint), 0).Find(token); !found || err != nil {
				t.Fatalf("%s: the session is not in the table sessions: found %v, %v", b, found, err)
			}
		} else {
			getMessage(t, b, c, p) // the session survived the restart
		}
		p.stop()
		outputs = append(outputs, p.output.String())
	}
	if ddblocal.IsDynalite() {
		// dynalite has no TTL and answers with a right checksum: what the
		// README shows is DynamoDB Local's, as make demo runs it.
		return
	}
	for run, out := range outputs {
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			if line != "" && !slices.Contains(shown, digits.ReplaceAllString(line, "N")) {
				t.Errorf("%s: start %d printed %q, which the README's \"Run it against DynamoDB Local\" does not show", b, run+1, line)
			}
		}
	}
	if !strings.Contains(outputs[1], "response did not match expected checksum") {
		t.Errorf("%s: the second start printed no checksum warning, as the README says it does:\n%s", b, outputs[1])
	}
}

// testChange runs the Use program with a change and drives it as testUse
// does, with the checks that the change's section promises.
func testChange(t *testing.T, bin string, s *snippet, env []string) {
	p := start(t, bin, env, "4000", "9464")
	c := browser()
	putAndGet(t, s.block, c, p)
	switch s.block.heading {
	case "Run it against DynamoDB Local":
		// The table exists, so CreateTable met an error response, which
		// DynamoDB Local answers with a wrong checksum.
		if out := p.output.String(); strings.Contains(out, "checksum") {
			t.Errorf("%s: the change that silences the checksum warning printed:\n%s", s.block, out)
		}
	case "Sealed sessions and hashed tokens":
		hash := sha256.Sum256([]byte(cookie(t, c, p.base)))
		out, err := ddblocal.NewClient(endpoint).GetItem(context.Background(), &dynamodb.GetItemInput{
			TableName: aws.String("sessions"),
			Key:       map[string]types.AttributeValue{"session_key": &types.AttributeValueMemberS{Value: base64.RawURLEncoding.EncodeToString(hash[:])}},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, plain := out.Item["data"]
		data, ok := out.Item["data_sealed"].(*types.AttributeValueMemberB)
		if plain || !ok || bytes.Contains(data.Value, []byte("Hello from a session!")) {
			t.Errorf("%s: the session is not stored sealed under the token's hash: %v", s.block, out.Item)
		}
	case "Telemetry":
		code, body := request(t, http.DefaultClient, "GET", "http://"+p.ports["9464"]+"/metrics")
		if code != http.StatusOK || !strings.Contains(body, "dynamostore_operations_total{") || !strings.Contains(body, `operation="commit"`) {
			t.Errorf("%s: GET /metrics: got %d, without the store's commits:\n%s", s.block, code, body)
		}
	}
}

// testLogOutEverywhere runs the README's log-out-everywhere program: one
// user in two browsers is logged out of both, and a caller who is not
// logged in is refused and logs nobody out.
func testLogOutEverywhere(t *testing.T, bin string, b readmeBlock, env []string) {
	p := start(t, bin, env, "4000")
	whoami := func(c *http.Client) string {
		t.Helper()
		code, body := request(t, c, "GET", p.base+"/")
		if code != http.StatusOK {
			t.Fatalf("%s: GET /: got %d %q", b, code, body)
		}
		return body
	}
	var browsers [2]*http.Client
	for i := range browsers {
		browsers[i] = browser()
		if who := whoami(browsers[i]); who != "not logged in" {
			t.Fatalf("%s: got %q before login: expected not logged in", b, who)
		}
		if code, body := request(t, browsers[i], "POST", p.base+"/login"); code != http.StatusOK {
			t.Fatalf("%s: POST /login: got %d %q", b, code, body)
		}
		if who := whoami(browsers[i]); who != "logged in as user 42" {
			t.Fatalf("%s: got %q after login: expected user 42", b, who)
		}
	}
	// Wait until the owner index lists both sessions, as it does eventually.
	store := dynamostore.NewWithCleanupInterval(ddblocal.NewClient(endpoint), 0)
	for deadline := time.Now().Add(hang); ; {
		tokens, err := store.OwnerTokens(context.Background(), "42")
		if err != nil {
			t.Fatal(err)
		}
		if len(tokens) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the owner index lists %d sessions of user 42 after %v: expected 2", b, len(tokens), hang)
		}
		<-time.After(50 * time.Millisecond) // a pause between reads, bounded by deadline
	}

	if code, body := request(t, browser(), "POST", p.base+"/logout-everywhere"); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Fatalf("%s: a caller who is not logged in got %d %q: expected 401 or 403", b, code, body)
	}
	for i, c := range browsers {
		if who := whoami(c); who != "logged in as user 42" {
			t.Fatalf("%s: browser %d: got %q after a logged-out caller's log-out-everywhere: expected still logged in", b, i, who)
		}
	}
	if code, body := request(t, browsers[0], "POST", p.base+"/logout-everywhere"); code != http.StatusOK || body != "logged out of 2 sessions" {
		t.Fatalf("%s: POST /logout-everywhere: got %d %q: expected 200, logged out of 2 sessions", b, code, body)
	}
	for i, c := range browsers {
		if who := whoami(c); who != "not logged in" {
			t.Fatalf("%s: browser %d: got %q after log out everywhere: expected not logged in", b, i, who)
		}
	}
}

// dynamoDBActions are the DynamoDB actions a row of the README's IAM table
// may name.
var dynamoDBActions = []string{"GetItem", "PutItem", "DeleteItem", "UpdateItem", "Query", "Scan", "BatchGetItem",
	"BatchWriteItem", "TransactGetItems", "TransactWriteItems", "DescribeTable", "DescribeTimeToLive", "CreateTable",
	"UpdateTable", "UpdateTimeToLive", "DeleteTable", "ListTables"}

// iamRow is a row of the README's IAM table: its role, as the README
// writes it, and the actions it grants.
type iamRow struct {
	role    string
	actions map[string]bool
}

// iamRows returns the rows of the README's IAM table, in order.
func iamRows(t *testing.T) []iamRow {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "### IAM policy\n")
	if !ok {
		t.Fatal(`no "### IAM policy" in the README`)
	}
	var rows []iamRow
	inTable := false
	for line := range strings.SplitSeq(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, " | ")
		if len(cells) < 2 || strings.HasPrefix(line, "| Role ") || strings.HasPrefix(line, "|-") {
			continue
		}
		actions := map[string]bool{}
		for _, m := range regexp.MustCompile("`([A-Za-z]+)`").FindAllStringSubmatch(cells[1], -1) {
			if slices.Contains(dynamoDBActions, m[1]) {
				actions[m[1]] = true
			}
		}
		rows = append(rows, iamRow{role: strings.TrimPrefix(cells[0], "| "), actions: actions})
	}
	if len(rows) < 2 {
		t.Fatalf("the README's IAM table has %d rows: expected the web application's and the sweeper's first", len(rows))
	}
	return rows
}

// policyProxy stands in front of the tests' DynamoDB as IAM would for a
// role: it relays the actions the role may take and refuses the others with
// DynamoDB's AccessDeniedException. It records both.
type policyProxy struct {
	allowed map[string]bool
	url     string
	target  string // the endpoint it relays to

	mu      sync.Mutex
	seen    []string
	denied  []string
	changed chan struct{} // closed and replaced at each request
}

func newPolicyProxy(t *testing.T, endpoint string, allowed map[string]bool) *policyProxy {
	t.Helper()
	p := &policyProxy{target: endpoint, allowed: allowed, changed: make(chan struct{})}
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	relay := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, action, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
		ok := p.allowed[action]
		p.mu.Lock()
		p.seen = append(p.seen, action)
		if !ok {
			p.denied = append(p.denied, action)
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"dynamodb:%s is not in the README's row for this role"}`, action)
			return
		}
		relay.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// waitFor waits until the proxy has seen action.
func (p *policyProxy) waitFor(t *testing.T, action string) {
	t.Helper()
	timeout := time.After(hang)
	for {
		p.mu.Lock()
		seen, changed := slices.Contains(p.seen, action), p.changed
		p.mu.Unlock()
		if seen {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %s within %v", action, hang)
		}
	}
}

// check fails the test if the proxy refused anything, or did not see each
// action the row grants: a row names what its role needs, no more.
func (p *policyProxy) check(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.denied) > 0 {
		t.Errorf("it took %v, which the README's IAM row does not grant", p.denied)
	}
	for _, action := range slices.Sorted(maps.Keys(p.allowed)) {
		if !slices.Contains(p.seen, action) {
			t.Errorf("it took no %s, which the README's IAM row grants: expected the test to reach it", action)
		}
	}
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
	changed chan struct{}
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// problems returns the records at Warn and above.
func (l *logRecorder) problems() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var msgs []string
	for _, r := range l.records {
		if r.Level >= slog.LevelWarn {
			var b strings.Builder
			b.WriteString(r.Message)
			r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
			msgs = append(msgs, b.String())
		}
	}
	return msgs
}

// waitFor waits until a record with message msg whose attributes satisfy ok
// is logged, and fails the test at once if a problem is logged first.
func (l *logRecorder) waitFor(t *testing.T, msg string, ok func(slog.Record) bool) {
	t.Helper()
	timeout := time.After(hang)
	for {
		if p := l.problems(); len(p) > 0 {
			t.Fatalf("the store logged %q", p)
		}
		l.mu.Lock()
		found := slices.ContainsFunc(l.records, func(r slog.Record) bool { return r.Message == msg && ok(r) })
		changed := l.changed
		l.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no %q logged within %v", msg, hang)
		}
	}
}

// newToken returns a token as scs makes them.
func newToken(t *testing.T, i int) string {
	t.Helper()
	sum := sha256.Sum256([]byte(t.Name() + strconv.Itoa(i)))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestREADMEIAM runs each role of the README's IAM table with only the
// actions its row grants, through a proxy in front of DynamoDB that
// refuses every other action, as IAM would, and checks that the role used
// each of them: the web application's row for New with its defaults, the
// sweeper's for a background sweep of a table without TTL, set-up's for
// CreateTable and the tool's create-table, and each of the tool's rows for
// its subcommands, built from this checkout. A row no test runs fails it.
func TestREADMEIAM(t *testing.T) {
	direct := ddblocal.NewClient(endpoint)
	ctx := context.Background()
	codec := scs.GobCodec{}
	owned := func(t *testing.T, user int) []byte {
		t.Helper()
		b, err := codec.Encode(time.Now().Add(time.Hour), map[string]any{"user_id": user})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tool := buildTool(t)
	// ownerTable creates table with its owner index, and two sessions of
	// user 7 that the index lists.
	ownerTable := func(t *testing.T, table string) {
		t.Helper()
		ddblocal.Setup(t, "CreateTable "+table, func(ctx context.Context) error {
			return dynamostore.CreateTable(ctx, direct, func(o *dynamostore.Options) {
				o.TableName = table
				o.Logger = slog.New(slog.DiscardHandler) // dynalite has no TTL API
			})
		})
		store := dynamostore.NewWithCleanupInterval(direct, 0, func(o *dynamostore.Options) {
			o.TableName = table
			o.Owner = dynamostore.SessionValue(codec, "user_id")
		})
		for i := range 2 {
			if err := store.Commit(newToken(t, i), owned(t, 7), time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(hang); ; { // the index is eventually consistent
			tokens, err := store.OwnerTokens(ctx, "7")
			if err != nil {
				t.Fatal(err)
			}
			if len(tokens) == 2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the owner index lists %d sessions of user 7 after %v: expected 2", len(tokens), hang)
			}
			time.Sleep(10 * time.Millisecond) // a poll, not a wait for the event
		}
	}
	// sweepTable creates table without TTL, with a live session and one
	// that expired before the sweeper's grace.
	sweepTable := func(t *testing.T, table string) {
		t.Helper()
		ddblocal.CreateTableWithoutTTL(t, direct, table, "session_key", types.ScalarAttributeTypeS)
		store := dynamostore.NewWithCleanupInterval(direct, 0, func(o *dynamostore.Options) { o.TableName = table })
		if err := store.Commit(newToken(t, 0), owned(t, 7), time.Now().Add(-2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := store.Commit(newToken(t, 1), owned(t, 7), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// runTool runs the tool with args against the proxy, and fails the
	// test unless it exits with code and prints want.
	runTool := func(t *testing.T, proxy *policyProxy, code int, want string, args ...string) {
		t.Helper()
		// --timeout: only a hang reaches it, and the tool then says what it waited for.
		cmd := exec.Command(tool, append(args, "--endpoint", proxy.url, "--timeout", hang.String())...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_REGION=us-east-1")
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != code || !strings.Contains(string(out), want) {
			t.Errorf("dynamostore %s: got exit %d, %q: expected exit %d and %q", strings.Join(args, " "), cmd.ProcessState.ExitCode(), out, code, want)
		}
	}

	roles := map[string]func(t *testing.T, proxy *policyProxy){
		"Web application, with `New`'s defaults": func(t *testing.T, proxy *policyProxy) {
			const table = "readme-iam-web"
			ddblocal.Setup(t, "CreateTable "+table, func(ctx context.Context) error {
				return dynamostore.CreateTable(ctx, direct, func(o *dynamostore.Options) { o.TableName = table })
			})
			logs := newLogRecorder()
			store := dynamostore.New(ddblocal.NewClient(proxy.url), func(o *dynamostore.Options) {
				o.TableName = table
				o.Owner = dynamostore.SessionValue(codec, "user_id")
				o.Logger = slog.New(logs)
			})
			defer store.StopCleanup()
			proxy.waitFor(t, "DescribeTimeToLive") // the sweeper's question, at its start

			expiry := time.Now().Add(time.Hour)
			for i := range 3 {
				if err := store.Commit(newToken(t, i), owned(t, 7), expiry); err != nil {
					t.Fatal(err)
				}
			}
			if _, found, err := store.Find(newToken(t, 0)); !found || err != nil {
				t.Fatalf("Find: got %v, %v: expected the session", found, err)
			}
			if err := store.Delete(newToken(t, 0)); err != nil {
				t.Fatal(err)
			}
			if _, err := store.OwnerTokens(ctx, "7"); err != nil {
				t.Fatal(err)
			}
			if _, err := store.DeleteOwner(ctx, "7"); err != nil {
				t.Fatal(err)
			}
			store.StopCleanup() // so that whatever its start logs is logged
			if p := logs.problems(); len(p) > 0 {
				t.Errorf("the store logged %q", p)
			}
		},
		"Sweeper: the background one where TTL is off (or with `SweepWithTTL`), a job calling `DeleteExpired`; and `All`, `Reseal`": func(t *testing.T, proxy *policyProxy) {
			const table = "readme-iam-sweeper"
			sweepTable(t, table)
			logs := newLogRecorder()
			store := dynamostore.NewWithCleanupInterval(ddblocal.NewClient(proxy.url), 100*time.Millisecond, func(o *dynamostore.Options) {
				o.TableName = table
				o.Logger = slog.New(logs)
			})
			defer store.StopCleanup()
			logs.waitFor(t, "dynamostore: swept expired sessions", func(r slog.Record) bool {
				deleted := false
				r.Attrs(func(a slog.Attr) bool {
					deleted = deleted || a.Key == "deleted" && a.Value.Int64() > 0
					return true
				})
				return deleted
			})
			store.StopCleanup() // releases the lease
			if p := logs.problems(); len(p) > 0 {
				t.Errorf("the store logged %q", p)
			}
		},
		"`dynamostore sessions`": func(t *testing.T, proxy *policyProxy) {
			const table = "readme-iam-sessions"
			ownerTable(t, table)
			runTool(t, proxy, 0, "live sessions: 2\n", "sessions", "--table", table, "--owner", "7")
		},
		"`dynamostore revoke`": func(t *testing.T, proxy *policyProxy) {
			const table = "readme-iam-revoke"
			ownerTable(t, table)
			// A wrong name revokes nothing: the tool reads a sample to say so.
			runTool(t, proxy, 1, "is --data-attribute right?", "revoke", "--table", table, "--owner", "7", "--data-attribute", "payload")
			runTool(t, proxy, 0, "revoked 2 sessions: 2 live, 0 expired\n", "revoke", "--table", table, "--owner", "7")
		},
		"`dynamostore stats`, `delete-expired --dry-run`": func(t *testing.T, proxy *policyProxy) {
			const table = "readme-iam-stats"
			sweepTable(t, table)
			runTool(t, proxy, 0, "live sessions: 1\nexpired sessions: 1\n", "stats", "--table", table)
			runTool(t, proxy, 0, "would delete 1 expired sessions of 2 items scanned", "delete-expired", "--dry-run", "--table", table)
		},
		"`dynamostore delete-expired`": func(t *testing.T, proxy *policyProxy) {
			const table = "readme-iam-delete-expired"
			sweepTable(t, table)
			runTool(t, proxy, 0, "deleted 1 expired sessions of 2 items scanned", "delete-expired", "--table", table)
		},
		"`dynamostore check`": func(t *testing.T, proxy *policyProxy) {
			const table = "readme-iam-check"
			ownerTable(t, table)
			if ddblocal.IsDynalite() { // no TTL API: check reports TTL off
				runTool(t, proxy, 1, "ttl: DISABLED\n", "check", "--table", table)
			} else {
				runTool(t, proxy, 0, "ttl: ENABLED on expires\n", "check", "--table", table)
			}
		},
		"Set-up (`CreateTable`, `dynamostore create-table`)": func(t *testing.T, proxy *policyProxy) {
			const table, bare = "readme-iam-setup", "readme-iam-setup-bare"
			ddblocal.Setup(t, "CreateTable "+table, func(ctx context.Context) error {
				return dynamostore.CreateTable(ctx, ddblocal.NewClient(proxy.url), func(o *dynamostore.Options) {
					o.TableName = table
					o.Logger = slog.New(slog.DiscardHandler) // dynalite has no TTL API
				})
			})
			// A table without the owner index and TTL: create-table adds them.
			ddblocal.CreateTableWithoutTTL(t, ddblocal.NewClient(proxy.target), bare, "session_key", types.ScalarAttributeTypeS)
			if ddblocal.IsDynalite() {
				// dynalite cannot add an index to a table: it refuses one
				// without capacity of its own, as on an on-demand table.
				runTool(t, proxy, 1, `add index "owner-index" on "owner": `, "create-table", "--table", bare)
				return
			}
			runTool(t, proxy, 0, "table "+bare+" is ready: partition key session_key (S), index owner-index on owner, TTL on expires\n", "create-table", "--table", bare)
		},
	}
	for _, row := range iamRows(t) {
		test, ok := roles[row.role]
		if !ok {
			t.Errorf("the README's IAM row %q: no test runs it", row.role)
			continue
		}
		t.Run(row.role, func(t *testing.T) {
			t.Parallel()
			target := endpoint
			if strings.HasPrefix(row.role, "Set-up") {
				target = ddblocal.ForNewIndex(t, endpoint) // it adds an index to a table
			}
			proxy := newPolicyProxy(t, target, row.actions)
			test(t, proxy)
			proxy.check(t)
		})
	}
}

// buildTool builds the command-line tool from this checkout, in its own
// module, and returns the program's path.
func buildTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dynamostore")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join("..", "cmd", "dynamostore")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build of the tool: %v\n%s", err, out)
	}
	return bin
}

// TestREADMECommands checks the commands the README names, in its shell
// blocks and in its text: each make target and variable is the Makefile's,
// each go get names this repository's modules or a module the repository
// requires, each go install a command of this repository, and each go -C a
// directory of it.
func TestREADMECommands(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	// The modules the repository requires, and its own.
	modules := map[string]bool{}
	for _, m := range []string{".", "example", "cmd/dynamostore", "rediscache"} {
		gomod, err := os.ReadFile(filepath.Join("..", m, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(gomod), "\n") {
			if f := strings.Fields(strings.TrimPrefix(line, "require ")); len(f) >= 2 && strings.HasPrefix(f[1], "v") {
				modules[f[0]] = true
			}
			if f, ok := strings.CutPrefix(line, "module "); ok {
				modules[f] = true
			}
		}
	}

	// The commands: each line of a shell block, and each inline code span.
	var commands []string
	for _, b := range readmeBlocks(t) {
		if b.lang == "sh" {
			commands = append(commands, strings.Split(b.text, "\n")...)
		}
	}
	// Inline spans are paired outside the fenced blocks only.
	prose := regexp.MustCompile("(?ms)^```.*?^```$").ReplaceAllString(string(readme), "")
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(prose, -1) {
		commands = append(commands, strings.Join(strings.Fields(m[1]), " "))
	}
	checked := 0
	for _, command := range commands {
		command, _, _ = strings.Cut(command, " #")
		f := strings.Fields(command)
		switch {
		case len(f) >= 2 && f[0] == "make":
			checked++
			for _, arg := range f[1:] {
				if name, _, ok := strings.Cut(arg, "="); ok {
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*[?:]?=`).Match(makefile) {
						t.Errorf("README: %q: the Makefile has no variable %s", command, name)
					}
				} else if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(arg) + `:`).Match(makefile) {
					t.Errorf("README: %q: the Makefile has no target %s", command, arg)
				}
			}
		case len(f) >= 3 && f[0] == "go" && f[1] == "get":
			checked++
			for _, arg := range f[2:] {
				path, _, _ := strings.Cut(arg, "@")
				if !modules[path] {
					t.Errorf("README: %q: %s is neither this repository's module nor one it requires", command, path)
				}
			}
		case len(f) >= 3 && f[0] == "go" && f[1] == "install":
			checked++
			path, _, _ := strings.Cut(f[2], "@")
			dir, ok := strings.CutPrefix(path, "github.com/dynamostore/dynamostore/")
			if !ok {
				t.Errorf("README: %q: not a command of this repository", command)
				continue
			}
			if f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", dir, "main.go"), nil, parser.PackageClauseOnly); err != nil || f.Name.Name != "main" {
				t.Errorf("README: %q: ../%s is no command: %v", command, dir, err)
			}
		case len(f) >= 3 && f[0] == "go" && f[1] == "-C":
			checked++
			if _, err := os.Stat(filepath.Join("..", f[2], "go.mod")); err != nil {
				t.Errorf("README: %q: %s is not a module of this repository: %v", command, f[2], err)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d commands of the README: expected at least make demo, make test, go get, go install and go -C", checked)
	}
}
