// Command example is a small web app whose scs sessions live in DynamoDB
// through dynamostore, behind a CachedStore: a page that counts your visits,
// a login form that renews the session token, a logout that destroys the
// session, and, for a logged-in user, how many sessions they have and a
// button that logs them out everywhere (dynamostore's owner index). The
// store holds hashed tokens (scs's HashTokenInStore). It serves the store's
// OpenTelemetry metrics in Prometheus text format at /metrics, and its page
// shows the capacity units the sessions have cost and the cache's hit
// rate.
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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

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
	var ddbEndpoint string
	if local {
		srv, err := ddblocal.Start()
		if err != nil {
			return err
		}
		defer srv.Stop()
		os.Setenv("AWS_ACCESS_KEY_ID", "local")
		os.Setenv("AWS_SECRET_ACCESS_KEY", "local")
		ddbEndpoint = srv.Endpoint
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
	tel, err := newTelemetry()
	if err != nil {
		return err
	}
	defer tel.provider.Shutdown(context.Background())
	if err := dynamostore.CreateTable(ctx, client, storeOptions(table, tel)); err != nil {
		return err
	}
	store := dynamostore.New(client, storeOptions(table, tel))
	defer store.StopCleanup()

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: newApp(store, tel)}
	go func() { <-ctx.Done(); server.Shutdown(context.Background()) }()
	fmt.Printf("serving the dynamostore example on http://%s (table %s); Ctrl-C stops it\n", l.Addr(), table)
	if ddbEndpoint != "" {
		fmt.Printf("DynamoDB Local listens on %s; try the command-line tool against it:\n"+
			"  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 go run ./cmd/dynamostore check --endpoint %s --table %s\n",
			ddbEndpoint, ddbEndpoint, table)
	}
	if err := server.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// userKey holds the logged-in user's ID in the session data, and so names
// the session's owner.
const userKey = "user"

// storeOptions are the example's store options: its table, the owner of
// each session from its data, decoded with scs's default codec, and its
// metrics.
func storeOptions(table string, tel *telemetry) func(*dynamostore.Options) {
	return func(o *dynamostore.Options) {
		o.TableName = table
		o.Owner = dynamostore.SessionValue(scs.GobCodec{}, userKey)
		o.MeterProvider = tel.provider
	}
}

// telemetry is the example's OpenTelemetry SDK: a MeterProvider whose
// metrics go to a Prometheus registry, served at /metrics, and to a reader
// the page sums the capacity units from.
type telemetry struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
	reader   *sdkmetric.ManualReader
}

func newTelemetry() (*telemetry, error) {
	t := &telemetry{registry: prometheus.NewRegistry(), reader: sdkmetric.NewManualReader()}
	exporter, err := otelprom.New(otelprom.WithRegisterer(t.registry))
	if err != nil {
		return nil, err
	}
	t.provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithReader(t.reader))
	return t, nil
}

// capacity returns the read and write capacity units the store has
// consumed so far, as DynamoDB reported them.
func (t *telemetry) capacity(ctx context.Context) (read, write float64) {
	var rm metricdata.ResourceMetrics
	if err := t.reader.Collect(ctx, &rm); err != nil {
		return 0, 0
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[float64])
			if m.Name != "dynamostore.capacity" || !ok {
				continue
			}
			for _, p := range sum.DataPoints {
				if kind, _ := p.Attributes.Value("kind"); kind.AsString() == "read" {
					read += p.Value
				} else {
					write += p.Value
				}
			}
		}
	}
	return read, write
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<title>dynamostore example</title>
<h1>{{if .User}}Hello, {{.User}}{{else}}Hello, visitor{{end}}</h1>
<p>Visits in this session: <strong id="visits">{{.Visits}}</strong></p>
<p>Capacity units the sessions have cost so far: <strong id="read-units">{{printf "%.1f" .ReadUnits}}</strong> read,
<strong id="write-units">{{printf "%.1f" .WriteUnits}}</strong> write.
Cache hit rate: <strong id="hit-rate">{{printf "%.0f" .HitRate}}%</strong>. <a href="/metrics">Metrics</a></p>
{{if .User}}
<p>Your sessions: <strong id="sessions">{{.Sessions}}</strong> (log in from another browser to see two)</p>
<form method="post" action="/logout"><button>Log out</button></form>
<form method="post" action="/logout-everywhere"><button>Log out everywhere</button></form>
{{else}}
<form method="post" action="/login">
  <label>Name <input name="name" required></label>
  <button>Log in</button>
</form>
{{end}}
`))

// newApp returns the example's routes on sessions kept in store, behind a
// CachedStore, wrapped in scs's LoadAndSave, and its metrics.
func newApp(store *dynamostore.DynamoStore, tel *telemetry) http.Handler {
	cached := dynamostore.NewCached(store, func(o *dynamostore.CacheOptions) { o.MeterProvider = tel.provider })
	sm := scs.New()
	sm.Store = cached
	sm.HashTokenInStore = true
	sm.Lifetime = 24 * time.Hour
	sm.IdleTimeout = 30 * time.Minute

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		visits := sm.GetInt(r.Context(), "visits") + 1
		sm.Put(r.Context(), "visits", visits)
		user := sm.GetString(r.Context(), userKey)
		var sessions []string
		if user != "" {
			// A Query of the owner index and a read per session.
			var err error
			if sessions, err = store.OwnerTokens(r.Context(), user); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		st := cached.Stats()
		hitRate := 0.0
		if st.Hits+st.Misses > 0 {
			hitRate = 100 * float64(st.Hits) / float64(st.Hits+st.Misses)
		}
		read, write := tel.capacity(r.Context())
		page.Execute(w, struct {
			User                  string
			Visits                int
			Sessions              int
			ReadUnits, WriteUnits float64
			HitRate               float64
		}{user, visits, len(sessions), read, write, hitRate})
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
		sm.Put(r.Context(), userKey, name)
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		// Every session of the user, this one included, in one Query and
		// a delete each; Destroy keeps LoadAndSave from writing this one
		// back.
		if _, err := cached.DeleteOwner(r.Context(), sm.GetString(r.Context(), userKey)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	root := http.NewServeMux()
	root.Handle("GET /metrics", promhttp.HandlerFor(tel.registry, promhttp.HandlerOpts{}))
	root.Handle("/", sm.LoadAndSave(mux))
	return root
}
