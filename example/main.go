// Command example is a small web app whose scs sessions live in DynamoDB
// through dynamostore, behind a CachedStore: a page that counts your visits,
// a login form that renews the session token, a logout that destroys the
// session, and, for a logged-in user, how many sessions they have and a
// button that logs them out everywhere (dynamostore's owner index). The
// store holds hashed tokens (scs's HashTokenInStore). It serves the store's
// OpenTelemetry metrics in Prometheus text format at /metrics. Its page
// shows what the store did with your session: its values, the item as
// DynamoDB holds it (the key as stored, each attribute and its size, the
// format, the expiry counting down), what the previous request cost in
// capacity units, the cache's hits and misses, and the sweeper's latest word.
//
// Run it against DynamoDB Local with `make demo`, or against AWS with the
// standard AWS configuration (AWS_REGION, credentials, optionally
// AWS_ENDPOINT_URL_DYNAMODB):
//
//	go -C example run . -addr 127.0.0.1:8080 -table sessions
package main

import (
	"context"
	"flag"
	"fmt"
	"html/template"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
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
	store := dynamostore.New(costClient{client}, storeOptions(table, tel))
	defer store.StopCleanup()

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: newApp(store, client, table, tel)}
	go func() { <-ctx.Done(); server.Shutdown(context.Background()) }()
	fmt.Printf("serving the dynamostore example on http://%s (table %s); Ctrl-C stops it\n", l.Addr(), table)
	if ddbEndpoint != "" {
		fmt.Printf("DynamoDB Local listens on %s; try the command-line tool against it:\n"+
			"  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1 go -C cmd/dynamostore run . check --endpoint %s --table %s\n",
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
// each session from its data, decoded with scs's default codec, its
// metrics, and a log that keeps the sweeper's latest line for the page.
func storeOptions(table string, tel *telemetry) func(*dynamostore.Options) {
	return func(o *dynamostore.Options) {
		o.TableName = table
		o.Owner = dynamostore.SessionValue(scs.GobCodec{}, userKey)
		o.MeterProvider = tel.provider
		o.Logger = slog.New(sweeperLog{slog.NewTextHandler(os.Stderr, nil), &tel.sweeper})
	}
}

// telemetry is the example's OpenTelemetry SDK: a MeterProvider whose
// metrics go to a Prometheus registry, served at /metrics, and to a reader
// the page sums the capacity units from.
type telemetry struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
	reader   *sdkmetric.ManualReader

	sweeper atomic.Pointer[string] // the sweeper's latest log line
	last    atomic.Pointer[cost]   // what the latest request cost
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
<meta charset="utf-8">
<title>dynamostore demo</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; padding: 0 1rem; color: #1d232b; background: #f5f6f8; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; } header p { margin: 0 0 1.2rem; color: #5a6472; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(19rem, 1fr)); gap: 1rem; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: .6rem; padding: 1rem 1.2rem; }
h2 { font-size: .8rem; letter-spacing: .06em; text-transform: uppercase; color: #5a6472; margin: 0 0 .6rem; }
table { border-collapse: collapse; width: 100%; } td { padding: .2rem .4rem .2rem 0; vertical-align: top; }
td:first-child { color: #5a6472; white-space: nowrap; } code { font: 13px ui-monospace, monospace; word-break: break-all; }
.big { font-size: 1.5rem; font-weight: 600; } .muted { color: #5a6472; font-size: .9rem; }
form { display: inline-block; margin: .4rem .4rem 0 0; } input { padding: .35rem .5rem; border: 1px solid #c3c9d1; border-radius: .35rem; }
button { padding: .4rem .9rem; border: 0; border-radius: .35rem; background: #2456c8; color: #fff; cursor: pointer; } button.quiet { background: #5a6472; }
</style>
<header>
<h1>{{if .User}}Hello, {{.User}}{{else}}Hello, visitor{{end}}</h1>
<p>A web app whose scs sessions live in DynamoDB through dynamostore, behind a CachedStore. Each panel shows what the store did with your session.</p>
</header>
<div class="grid">
<section>
<h2>Your session</h2>
<table>
<tr><td>visits</td><td class="big"><strong id="visits">{{.Visits}}</strong></td></tr>
<tr><td>user</td><td id="user">{{if .User}}{{.User}}{{else}}(logged out){{end}}</td></tr>
<tr><td>cookie token</td><td><code>{{if .Token}}{{.Token}}…{{else}}(new: set with this response){{end}}</code></td></tr>
</table>
{{if .User}}
<p>Your sessions: <strong id="sessions">{{.Sessions}}</strong> <span class="muted">(log in from another browser to see two)</span></p>
<form method="post" action="/logout"><button id="logout">Log out</button></form>
<form method="post" action="/logout-everywhere"><button id="logout-everywhere" class="quiet">Log out everywhere</button></form>
{{else}}
<form method="post" action="/login">
  <label>Name <input id="name" name="name" required></label>
  <button id="login">Log in</button>
</form>
{{end}}
</section>
<section id="item">
<h2>The item in DynamoDB</h2>
{{with .Item}}
<table>
<tr><td>key as stored</td><td><code id="stored-key">{{.Key}}</code><div class="muted">a SHA-256 of your token (scs's HashTokenInStore): the table holds no usable cookie</div></td></tr>
<tr><td>data</td><td id="format">{{.Format}}</td></tr>
<tr><td>size</td><td><span id="item-bytes">{{.Bytes}}</span> bytes, names included</td></tr>
<tr><td>expires in</td><td><strong id="expires" data-ms="{{.ExpiresMs}}">{{.ExpiresIn}}</strong></td></tr>
</table>
<table class="muted">
{{range .Attributes}}<tr><td><code>{{.Name}}</code></td><td>{{.Type}}, {{.Bytes}} bytes</td></tr>
{{end}}</table>
<p class="muted">As stored after your previous request: scs writes the session after it sends this page.</p>
{{else}}
<p id="no-item">Not stored yet: scs writes a new session after it sends this page. Reload to see it.</p>
{{end}}
</section>
<section>
<h2>What it cost</h2>
<table>
<tr><td>previous request</td><td><strong id="last-read">{{printf "%.1f" .LastRead}}</strong> read, <strong id="last-write">{{printf "%.1f" .LastWrite}}</strong> write units</td></tr>
<tr><td>all requests so far</td><td><strong id="read-units">{{printf "%.1f" .ReadUnits}}</strong> read, <strong id="write-units">{{printf "%.1f" .WriteUnits}}</strong> write units</td></tr>
</table>
<p class="muted">Capacity units as DynamoDB reported them: a Find the cache answers costs nothing. <a href="/metrics">Metrics</a></p>
</section>
<section>
<h2>Cache and sweeper</h2>
<table>
<tr><td>cache</td><td><strong id="hits">{{.Hits}}</strong> hits, <strong id="misses">{{.Misses}}</strong> misses (hit rate <strong id="hit-rate">{{printf "%.0f" .HitRate}}%</strong>)</td></tr>
<tr><td>sweeper</td><td id="sweeper">{{.Sweeper}}</td></tr>
</table>
</section>
</div>
<script>
// The expiry counting down, from the item's exact expiry in milliseconds.
const e = document.getElementById("expires");
if (e) {
  const tick = () => {
    const s = Math.max(0, Math.round((Number(e.dataset.ms) - Date.now()) / 1000));
    e.textContent = Math.floor(s / 3600) + "h " + Math.floor(s / 60) % 60 + "m " + s % 60 + "s";
  };
  tick();
  setInterval(tick, 1000);
}
</script>
`))

// newApp returns the example's routes on sessions kept in store, behind a
// CachedStore, wrapped in scs's LoadAndSave, and its metrics.
// raw, a plain client on table, reads the session's item for the page.
func newApp(store *dynamostore.DynamoStore, raw *dynamodb.Client, table string, tel *telemetry) http.Handler {
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
		token := sm.Token(r.Context())
		item, err := inspect(r.Context(), raw, table, token)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var lastRead, lastWrite float64
		if c := tel.last.Load(); c != nil {
			lastRead, lastWrite = c.units()
		}
		sweeper := "no word yet: it logs when it stands down, resumes or fails"
		if s := tel.sweeper.Load(); s != nil {
			sweeper = *s
		}
		page.Execute(w, struct {
			User, Token           string
			Visits, Sessions      int
			Item                  *itemView
			LastRead, LastWrite   float64
			ReadUnits, WriteUnits float64
			Hits, Misses          uint64
			HitRate               float64
			Sweeper               string
		}{user, token[:min(len(token), 8)], visits, len(sessions), item, lastRead, lastWrite, read, write,
			st.Hits, st.Misses, hitRate, sweeper})
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
	// Each request carries a cost that the store's client adds to; once
	// LoadAndSave has committed, it is the latest request's.
	app := sm.LoadAndSave(mux)
	root.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &cost{}
		app.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), costKey{}, c)))
		tel.last.Store(c)
	}))
	return root
}
