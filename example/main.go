// Command example is a small web app whose scs sessions live in DynamoDB
// through dynamostore, behind a CachedStore: a page that counts your visits,
// a login form that renews the session token, and a logout that destroys the
// session.
//
// Run it against DynamoDB Local with `make demo`, or against AWS with the
// standard AWS configuration (AWS_REGION, credentials, optionally
// AWS_ENDPOINT_URL_DYNAMODB):
//
//	go run ./example -addr 127.0.0.1:8080 -table sessions
package main

import (
	"context"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	table := flag.String("table", "sessions", "DynamoDB table, created if missing")
	local := flag.Bool("local", false, "start DynamoDB Local (installed by `make ddb-local`) for the demo")
	flag.Parse()
	if err := serve(*addr, *table, *local); err != nil {
		log.Fatal(err)
	}
}

func serve(addr, table string, local bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var optFns []func(*dynamodb.Options)
	if local {
		srv, err := ddblocal.Start()
		if err != nil {
			return err
		}
		defer srv.Stop()
		os.Setenv("AWS_ACCESS_KEY_ID", "local")
		os.Setenv("AWS_SECRET_ACCESS_KEY", "local")
		optFns = append(optFns, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.Endpoint) })
	}
	// Keep an idle connection for every request in flight: with the SDK's
	// default of 10 per host, a busy server opens and closes connections
	// all the time (see BENCHMARKS.md).
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
	})
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(httpClient))
	if err != nil {
		return err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := dynamodb.NewFromConfig(cfg, optFns...)
	setTable := func(o *dynamostore.Options) { o.TableName = table }
	if err := dynamostore.CreateTable(ctx, client, setTable); err != nil {
		return err
	}
	store := dynamostore.New(client, setTable)
	defer store.StopCleanup()

	sessionManager := scs.New()
	sessionManager.Store = dynamostore.NewCached(store)
	sessionManager.Lifetime = 24 * time.Hour
	sessionManager.IdleTimeout = 30 * time.Minute

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: newApp(sessionManager)}
	go func() { <-ctx.Done(); server.Shutdown(context.Background()) }()
	fmt.Printf("serving the dynamostore example on http://%s (table %s); Ctrl-C stops it\n", l.Addr(), table)
	if err := server.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<title>dynamostore example</title>
<h1>{{if .User}}Hello, {{.User}}{{else}}Hello, visitor{{end}}</h1>
<p>Visits in this session: <strong id="visits">{{.Visits}}</strong></p>
{{if .User}}
<form method="post" action="/logout"><button>Log out</button></form>
{{else}}
<form method="post" action="/login">
  <label>Name <input name="name" required></label>
  <button>Log in</button>
</form>
{{end}}
`))

// newApp returns the example's routes, wrapped in scs's LoadAndSave.
func newApp(sm *scs.SessionManager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		visits := sm.GetInt(r.Context(), "visits") + 1
		sm.Put(r.Context(), "visits", visits)
		page.Execute(w, struct {
			User   string
			Visits int
		}{sm.GetString(r.Context(), "user"), visits})
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		name := r.PostFormValue("name")
		if name == "" {
			http.Error(w, "name required", http.StatusBadRequest)
			return
		}
		// A new token on privilege change prevents session fixation.
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), "user", name)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	return sm.LoadAndSave(mux)
}
