// Command example is a small web app whose scs sessions live in DynamoDB
// through dynamostore, behind a CachedStore: a page that counts your visits,
// a login form that renews the session token, a logout that destroys the
// session, and, for a logged-in user, a "your devices" panel (dynamostore's
// owner index): a button that lists their sessions, each with the browser
// it was signed in from and when it was last active, "this device", a
// button that logs out one of the others, one that logs out all the
// others, and one that logs them out everywhere. It
// keeps sessions the way the README recommends: the store holds hashed
// tokens (scs's HashTokenInStore), data sealed with AES-256-GCM
// (Options.Encryption, with RequireEncryption) under a key made when the
// demo starts, and, as the owner, an opaque user ID rather than the typed
// name. It serves the store's OpenTelemetry metrics in Prometheus text
// format at /metrics. Its page shows what the store did with your session:
// its values, the item as DynamoDB holds it (the key as stored, the owner,
// each attribute and its size, the format, the expiry counting down), what
// this browser's previous request cost in capacity units, what listing the
// devices cost, the cache's hits and misses, and the sweeper's latest word.
//
// The keys live only in memory: restarting the demo logs everyone out.
//
// Run it against DynamoDB Local with `make demo`, or against AWS with the
// standard AWS configuration (AWS_REGION, credentials, optionally
// AWS_ENDPOINT_URL_DYNAMODB):
//
//	go -C example run . -addr 127.0.0.1:8080 -table sessions
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"html/template"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), `Usage: example [-addr host:port] [-table name] [-local]

Serves the dynamostore demo app: scs sessions in DynamoDB behind a
CachedStore, sealed with a key made at start (restarting logs everyone out),
with a page that shows what the store did with your session and what this
browser's previous request cost. It uses the standard AWS configuration
(AWS_REGION, credentials, optionally AWS_ENDPOINT_URL_DYNAMODB), or, with
-local, DynamoDB Local installed by `+"`make ddb-local`"+`.

`)
		flag.PrintDefaults()
	}
	addr := flag.String("addr", "127.0.0.1:8080", "address to serve on")
	table := flag.String("table", "sessions", "DynamoDB table, created if missing")
	local := flag.Bool("local", false, "start DynamoDB Local (installed by make ddb-local) for the demo, in memory")
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
	keys, err := newDemoKeys()
	if err != nil {
		return err
	}
	if err := dynamostore.CreateTable(ctx, client, storeOptions(table, tel, keys)); err != nil {
		return err
	}
	store := dynamostore.New(costClient{client}, storeOptions(table, tel, keys))
	defer store.StopCleanup()

	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: newApp(store, client, table, tel, keys)}
	go func() { <-ctx.Done(); server.Shutdown(context.Background()) }()
	fmt.Printf("serving the dynamostore example on http://%s (table %s); Ctrl-C stops it\n", l.Addr(), table)
	fmt.Println("sessions are sealed with a key made now and kept in memory only: stopping the demo logs everyone out")
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

// The session's values. userKey holds the logged-in user's opaque ID, and
// so names the session's owner; nameKey the name they typed, which only
// the sealed data holds.
const (
	userKey     = "user"
	nameKey     = "name"
	visitsKey   = "visits"
	agentKey    = "agent"     // the browser's User-Agent at login, for "your devices"
	signedInKey = "signed_in" // when the user logged in, as the page shows it
	flashKey    = "flash"     // a message for the next page
)

// maxNameBytes bounds the name a visitor logs in with.
const maxNameBytes = 64

// maxAgentBytes bounds the User-Agent a session keeps: a header can be far
// longer, and every byte is stored, sealed and read back with the session.
const maxAgentBytes = 200

// userAgent returns r's User-Agent, cut to maxAgentBytes of valid UTF-8.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > maxAgentBytes {
		ua = ua[:maxAgentBytes]
	}
	return strings.ToValidUTF8(ua, "")
}

// storeOptions are the example's store options: its table, the owner of
// each session from its data, decoded with scs's default codec, data
// sealed with the demo's key (and unsealed data refused), its metrics, and
// a log that keeps the sweeper's latest line for the page.
func storeOptions(table string, tel *telemetry, keys *demoKeys) func(*dynamostore.Options) {
	return func(o *dynamostore.Options) {
		o.TableName = table
		o.Owner = dynamostore.SessionValue(scs.GobCodec{}, userKey)
		o.Encryption = keys.seal
		o.RequireEncryption = true
		o.MeterProvider = tel.provider
		o.Logger = slog.New(sweeperLog{slog.NewTextHandler(os.Stderr, nil), &tel.sweeper})
	}
}

// demoKeys are the keys the demo makes when it starts and keeps in memory
// only: the AES-256-GCM key that seals every session, and the HMAC key
// that turns a typed name into the user ID the owner index holds. A
// restart makes new ones and so logs everyone out: their sessions no
// longer open, and their names map to new IDs. A real application keeps
// its key in a keyset (README, "Sealed sessions and hashed tokens") and
// takes its user IDs from its user table.
type demoKeys struct {
	seal  dynamostore.AEAD
	users []byte
}

func newDemoKeys() (*demoKeys, error) {
	sealKey, users := make([]byte, 32), make([]byte, 32)
	rand.Read(sealKey) // crypto/rand.Read never fails
	rand.Read(users)
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return &demoKeys{seal: sealer{gcm}, users: users}, nil
}

// userID returns the opaque ID the demo gives the user called name, in
// place of the ID a real application's user table would give: stable
// while the demo runs, and telling nothing of the name to a reader of the
// table, where the owner is stored in clear.
func (k *demoKeys) userID(name string) string {
	mac := hmac.New(sha256.New, k.users)
	mac.Write([]byte(name))
	return "user-" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// sealer is a cipher.AEAD that makes its own nonces, as the one from
// cipher.NewGCMWithRandomNonce does, as a dynamostore.AEAD: Seal puts a
// random nonce before the ciphertext, and Open takes it from there.
type sealer struct{ aead cipher.AEAD }

func (s sealer) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return s.aead.Seal(nil, nil, plaintext, associatedData), nil
}

func (s sealer) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return s.aead.Open(nil, nil, ciphertext, associatedData)
}

// telemetry is the example's OpenTelemetry SDK: a MeterProvider whose
// metrics go to a Prometheus registry, served at /metrics, and to any
// further readers given, and the sweeper's latest log line.
type telemetry struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry

	sweeper atomic.Pointer[string] // the sweeper's latest log line
}

func newTelemetry(readers ...sdkmetric.Reader) (*telemetry, error) {
	t := &telemetry{registry: prometheus.NewRegistry()}
	exporter, err := otelprom.New(otelprom.WithRegisterer(t.registry))
	if err != nil {
		return nil, err
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(exporter)}
	for _, r := range readers {
		opts = append(opts, sdkmetric.WithReader(r))
	}
	t.provider = sdkmetric.NewMeterProvider(opts...)
	return t, nil
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
.flash { background: #e6f4ea; border: 1px solid #b7dfc2; border-radius: .6rem; padding: .6rem 1rem; margin: 0 0 1rem; }
form { display: inline-block; margin: .4rem .4rem 0 0; } input { padding: .35rem .5rem; border: 1px solid #c3c9d1; border-radius: .35rem; }
tr.device td { white-space: normal; color: inherit; padding-bottom: .5rem; overflow-wrap: anywhere; }
button { padding: .4rem .9rem; border: 0; border-radius: .35rem; background: #2456c8; color: #fff; cursor: pointer; } button.quiet { background: #5a6472; }
</style>
<header>
<h1>{{if .Name}}Hello, {{.Name}}{{else}}Hello, visitor{{end}}</h1>
<p>A web app whose scs sessions live in DynamoDB through dynamostore, behind a CachedStore. Each panel shows what the store did with your session.
Sessions are sealed with a key generated when this demo started and kept in its memory only: restarting it logs everyone out.</p>
</header>
{{with .Flash}}<p class="flash" id="flash">{{.}}</p>{{end}}
<div class="grid">
<section>
<h2>Your session</h2>
<table>
<tr><td>visits</td><td class="big"><strong id="visits">{{.Visits}}</strong></td></tr>
<tr><td>user</td><td id="user">{{if .Name}}{{.Name}}{{else}}(logged out){{end}}</td></tr>
{{if .Name}}<tr><td>user ID</td><td><code id="user-id">{{.UserID}}</code><div class="muted">the session's owner: an opaque ID the demo gives your name, since the owner index holds it in clear</div></td></tr>{{end}}
<tr><td>cookie token</td><td><code>{{if .Token}}{{.Token}}…{{else}}(new: set with this response){{end}}</code></td></tr>
</table>
{{if .Name}}
<form method="post" action="/logout"><button id="logout">Log out</button></form>
<form method="post" action="/logout-everywhere"><button id="logout-everywhere" class="quiet">Log out everywhere</button></form>
{{else}}
<form method="post" action="/login">
  <label>Name <input id="name" name="name" required maxlength="64"></label>
  <button id="login">Log in</button>
</form>
{{end}}
</section>
{{if .Name}}
<section id="devices">
<h2>Your devices</h2>
{{with .Devices}}
<p>Your sessions: <strong id="sessions">{{len .List}}</strong> <span class="muted">listed at {{.ListedAt}}, for <strong id="list-read">{{printf "%.1f" .Read}}</strong> read units</span>{{if eq (len .List) 1}} <span class="muted" id="hint">(log in from another browser to see two)</span>{{end}}</p>
<table>
{{range .List}}<tr class="device" data-id="{{.ID}}"><td><span class="agent">{{.Agent}}</span>{{if .Current}} <strong id="this-device">(this device)</strong>{{end}}
<div class="muted">last active <span class="last-active">{{.LastActive}}</span>{{with .SignedIn}}, signed in at {{.}}{{end}}</div>
{{if not .Current}}<form method="post" action="/devices/revoke"><input type="hidden" name="id" value="{{.ID}}"><button class="revoke quiet">Log out this device</button></form>{{end}}</td></tr>
{{end}}</table>
<form method="post" action="/devices/others"><button id="logout-others" class="quiet">Log out other devices</button></form>
{{else}}
<p id="not-listed">Not listed on this view.</p>
{{end}}
<form method="get" action="/devices"><button id="list-devices">{{if .Devices}}List again{{else}}Show my devices{{end}}</button></form>
<p class="muted">Listing reads the owner index (a Query) and each session it lists (a read per session, about one read unit each), so only this button and the buttons here list; a view does not.
A device that just signed in may take a moment to appear: the index catches up within about a second. "Last active" is the last request that changed the session.</p>
</section>
{{end}}
<section id="item">
<h2>The item in DynamoDB</h2>
{{with .Item}}
<table>
<tr><td>key as stored</td><td><code id="stored-key">{{.Key}}</code><div class="muted">a SHA-256 of your token (scs's HashTokenInStore): the table holds no usable cookie</div></td></tr>
<tr><td>owner</td><td>{{if .Owner}}<code id="owner">{{.Owner}}</code>{{else}}<span id="owner">(none: not logged in)</span>{{end}}</td></tr>
<tr><td>data</td><td><span id="format">{{.Format}}</span><div class="muted">AES-256-GCM under the demo's key (Options.Encryption), bound to the key, expiry and owner; unsealed items are refused (RequireEncryption)</div></td></tr>
<tr><td>size</td><td><span id="item-bytes">{{.Bytes}}</span> bytes, names included</td></tr>
<tr><td>expires in</td><td><strong id="expires" data-ms="{{.ExpiresMs}}">{{.ExpiresIn}}</strong></td></tr>
</table>
<table class="muted">
{{range .Attributes}}<tr><td><code>{{.Name}}</code></td><td>{{.Type}}, {{.Bytes}} bytes</td></tr>
{{end}}</table>
<p class="muted">As stored before this request: the page reads the item first, and scs writes the session as it starts sending the page.</p>
{{else}}
<p id="no-item">Not stored yet: scs writes a new session as it sends this page. Reload to see it.</p>
{{end}}
</section>
<section>
<h2>What it cost</h2>
<table>
<tr><td>your previous request</td><td id="last-cost">{{with .Last}}<code id="last-request">{{.Request}}</code>: <strong id="last-read">{{printf "%.1f" .Read}}</strong> read, <strong id="last-write">{{printf "%.1f" .Write}}</strong> write units{{else}}<span id="no-last">none yet from this browser</span>{{end}}</td></tr>
<tr><td>your requests before this one</td><td><strong id="read-units">{{printf "%.1f" .Total.Read}}</strong> read, <strong id="write-units">{{printf "%.1f" .Total.Write}}</strong> write units over <span id="requests">{{.Requests}}</span> requests</td></tr>
</table>
<p class="muted">The capacity units DynamoDB reported for this browser's requests (a cookie of the demo's tells browsers apart), the store's calls only: the page's own read of the item is not counted.
A Find the cache answers costs no read units; a view still writes, since its visit count changes. Every visitor's together: <a href="/metrics">Metrics</a>.</p>
</section>
<section>
<h2>Cache and sweeper</h2>
<table>
<tr><td>cache</td><td><strong id="hits">{{.Hits}}</strong> hits, <strong id="misses">{{.Misses}}</strong> misses (hit rate <strong id="hit-rate">{{printf "%.0f" .HitRate}}%</strong>)<div class="muted">this server's cache, every visitor's Finds</div></td></tr>
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
// CachedStore, wrapped in scs's LoadAndSave, and its metrics. raw, a plain
// client on table, reads the session's item for the page; keys gives the
// users their IDs.
func newApp(store *dynamostore.DynamoStore, raw *dynamodb.Client, table string, tel *telemetry, keys *demoKeys) http.Handler {
	cached := dynamostore.NewCached(store, func(o *dynamostore.CacheOptions) { o.MeterProvider = tel.provider })
	sm := scs.New()
	sm.Store = cached
	sm.HashTokenInStore = true
	sm.Lifetime = 24 * time.Hour
	sm.IdleTimeout = 30 * time.Minute

	// view renders the page, with the user's devices listed when devices
	// is set: listing costs a Query and a read per session, so only the
	// devices buttons list.
	view := func(w http.ResponseWriter, r *http.Request, devices bool) {
		ctx := r.Context()
		visits := sm.GetInt(ctx, visitsKey) + 1
		sm.Put(ctx, visitsKey, visits)
		st := cached.Stats()
		hitRate := 0.0
		if st.Hits+st.Misses > 0 {
			hitRate = 100 * float64(st.Hits) / float64(st.Hits+st.Misses)
		}
		token := sm.Token(ctx)
		item, err := inspect(ctx, raw, table, token)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var list *devicesView
		if user := sm.GetString(ctx, userKey); devices && user != "" {
			if list, err = listDevices(ctx, cached, sm, user); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		last, total, requests := visitorOf(ctx).costs()
		sweeper := "no word yet: it logs when it stands down, resumes or fails"
		if s := tel.sweeper.Load(); s != nil {
			sweeper = *s
		}
		page.Execute(w, struct {
			Name, UserID, Token string
			Flash               string
			Visits              int
			Devices             *devicesView
			Item                *itemView
			Last                *requestCost
			Total               units
			Requests            int
			Hits, Misses        uint64
			HitRate             float64
			Sweeper             string
		}{sm.GetString(ctx, nameKey), sm.GetString(ctx, userKey), token[:min(len(token), 8)],
			sm.PopString(ctx, flashKey), visits, list,
			item, last, total, requests, st.Hits, st.Misses, hitRate, sweeper})
	}
	// loggedIn returns the logged-in user's ID, or, with a message for
	// the next page and a redirect to it, false.
	loggedIn := func(w http.ResponseWriter, r *http.Request, what string) (string, bool) {
		user := sm.GetString(r.Context(), userKey)
		if user == "" {
			sm.Put(r.Context(), flashKey, "You are not logged in: "+what)
			http.Redirect(w, r, "/", http.StatusSeeOther)
		}
		return user, user != ""
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { view(w, r, false) })
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := loggedIn(w, r, "log in to see your devices."); ok {
			view(w, r, true)
		}
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSpace(r.PostFormValue("name"))
		if name == "" || len(name) > maxNameBytes || !utf8.ValidString(name) {
			http.Error(w, fmt.Sprintf("name: give 1 to %d bytes of UTF-8 text", maxNameBytes), http.StatusBadRequest)
			return
		}
		// A new token on privilege change prevents session fixation.
		if err := sm.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), userKey, keys.userID(name))
		sm.Put(r.Context(), nameKey, name)
		// What "your devices" shows of this session: the store lists
		// sessions, and the application says what each one is.
		sm.Put(r.Context(), agentKey, userAgent(r))
		sm.Put(r.Context(), signedInKey, time.Now().Format("15:04:05"))
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /devices/revoke", func(w http.ResponseWriter, r *http.Request) {
		user, ok := loggedIn(w, r, "there is no device of yours to log out.")
		if !ok {
			return
		}
		id := r.PostFormValue("id")
		if id != "" && id == cached.CurrentSessionID(r.Context(), sm) {
			// This device: a logout, which Destroy makes final here, and
			// which keeps LoadAndSave from writing the session back.
			if err := sm.Destroy(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			sm.Put(r.Context(), flashKey, "Logged out: this browser's session is deleted.")
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		// Only a session of this user: another user's ID, an unknown or
		// an empty one revoke nothing, and the page tells them apart from
		// none of these.
		revoked, err := cached.DeleteOwnerSession(r.Context(), user, id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		msg := "Logged out that device: its next request finds no session."
		if !revoked {
			msg = "No device of yours has that ID: nothing was logged out. (It may have ended already; a device that just signed in may take a moment to be listed.)"
		}
		sm.Put(r.Context(), flashKey, msg)
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /devices/others", func(w http.ResponseWriter, r *http.Request) {
		user, ok := loggedIn(w, r, "there are no devices of yours to log out.")
		if !ok {
			return
		}
		current := cached.CurrentSessionID(r.Context(), sm)
		if current == "" {
			// Not yet committed, so the index holds none of this
			// browser's; DeleteOwnerExcept refuses an empty ID.
			sm.Put(r.Context(), flashKey, "This browser's session is not stored yet: reload, then try again.")
			http.Redirect(w, r, "/devices", http.StatusSeeOther)
			return
		}
		n, err := cached.DeleteOwnerExcept(r.Context(), user, current)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), flashKey, fmt.Sprintf("Logged out %s; this one stays logged in.", plural(n, "other device")))
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		user, ok := loggedIn(w, r, "there is nothing to log out of.")
		if !ok {
			return
		}
		// Every session of the user the owner index lists, this one
		// included once the index has it, in one Query and a delete each;
		// Destroy ends this one in any case, and keeps LoadAndSave from
		// writing it back.
		n, err := cached.DeleteOwner(r.Context(), user)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// After Destroy, a Put starts a new session, for the message only.
		sm.Put(r.Context(), flashKey, fmt.Sprintf("Logged out everywhere: %s deleted.", plural(n, "session")))
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := sm.Destroy(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sm.Put(r.Context(), flashKey, "Logged out: this browser's session is deleted.")
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	root := http.NewServeMux()
	root.Handle("GET /metrics", promhttp.HandlerFor(tel.registry, promhttp.HandlerOpts{}))
	// Not through the sessions: a browser asks for it by itself after each
	// page, and it would be "your previous request".
	root.Handle("GET /favicon.ico", http.NotFoundHandler())
	// Every form here is a POST that logs in or out: one a browser sends
	// from another site (CSRF) is refused, before it loads a session.
	root.Handle("/", http.NewCrossOriginProtection().Handler(withCosts(sm.LoadAndSave(mux))))
	return root
}

// plural returns n and noun, in the plural unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// devicesView is the user's sessions as "your devices" lists them, and
// what listing them cost.
type devicesView struct {
	List     []deviceView
	ListedAt string
	Read     float64 // the read units DynamoDB reported for the listing
}

// deviceView is one of the user's sessions, as its login described it.
type deviceView struct {
	ID         string // OwnerSession.ID: opaque, posted back to log it out
	Agent      string // the User-Agent its login stored
	SignedIn   string // when it logged in
	LastActive string // when a Commit last wrote it
	Current    bool   // the session of the request that lists them
}

// listDevices lists the user's sessions through store, most recently
// active first, each with what its login stored in it, read with sm's
// codec, and marks the request's own.
func listDevices(ctx context.Context, store *dynamostore.CachedStore, sm *scs.SessionManager, user string) (*devicesView, error) {
	before := costOf(ctx).units()
	sessions, err := store.OwnerSessions(ctx, user)
	if err != nil {
		return nil, err
	}
	v := &devicesView{ListedAt: time.Now().Format("15:04:05"), Read: costOf(ctx).units().Read - before.Read}
	current := store.CurrentSessionID(ctx, sm)
	for _, s := range sessions {
		d := deviceView{ID: s.ID, Agent: "a device whose session the demo cannot read", LastActive: "unknown", Current: s.ID == current}
		// Data is nil for a session the store cannot open.
		if _, values, err := sm.Codec.Decode(s.Data); err == nil {
			d.Agent, _ = values[agentKey].(string)
			if d.Agent == "" {
				d.Agent = "a browser that sent no User-Agent"
			}
			d.SignedIn, _ = values[signedInKey].(string)
		}
		if !s.LastWrite.IsZero() {
			d.LastActive = s.LastWrite.Local().Format("15:04:05")
		}
		v.List = append(v.List, d)
	}
	// The owner index is eventually consistent: a session committed a
	// moment ago may not be listed yet. This request's own is shown from
	// what it holds rather than hidden.
	if current != "" && !slices.ContainsFunc(v.List, func(d deviceView) bool { return d.Current }) {
		d := deviceView{ID: current, Agent: sm.GetString(ctx, agentKey), SignedIn: sm.GetString(ctx, signedInKey), LastActive: "just now", Current: true}
		if d.Agent == "" {
			d.Agent = "a browser that sent no User-Agent"
		}
		v.List = append([]deviceView{d}, v.List...)
	}
	return v, nil
}
