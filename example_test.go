package dynamostore_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/alexedwards/scs/v2"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynamostore/dynamostore"
)

// An scs session manager whose sessions live in the DynamoDB table
// "sessions", with the AWS configuration taken from the environment.
func Example() {
	// An idle connection for every request in flight: the SDK's default
	// transport keeps 10 per host (see BENCHMARKS.md).
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
	})
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(httpClient))
	if err != nil {
		log.Fatal(err)
	}
	client := dynamodb.NewFromConfig(cfg)

	sessionManager := scs.New()
	sessionManager.Store = dynamostore.New(client)
	sessionManager.Lifetime = 24 * time.Hour

	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sessionManager.Put(r.Context(), "message", "Hello from a session!")
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sessionManager.GetString(r.Context(), "message"))
	})
	log.Fatal(http.ListenAndServe(":4000", sessionManager.LoadAndSave(mux)))
}

// Options mirror the settings of django-dynamodb-sessions; functions set
// only what they change.
func ExampleNew() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	store := dynamostore.New(dynamodb.NewFromConfig(cfg), func(o *dynamostore.Options) {
		o.TableName = "myapp-sessions"
		o.KeyPrefix = "myapp:"
		o.ConsistentRead = false // behind a cache, eventually consistent reads cost half
	})
	defer store.StopCleanup()
}

// Compress sessions of 1 KB or more (a write unit is 1 KB), and let the
// sweeper allow for instances whose clocks differ by up to two minutes.
func ExampleOptions() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	store := dynamostore.New(dynamodb.NewFromConfig(cfg), func(o *dynamostore.Options) {
		o.CompressAbove = 1024
		o.SweepGrace = 2 * time.Minute
	})
	defer store.StopCleanup()
}

// Without the background sweeper, relying on DynamoDB's TTL to delete
// expired sessions; the store never serves one either way.
func ExampleNewWithCleanupInterval() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	store := dynamostore.NewWithCleanupInterval(dynamodb.NewFromConfig(cfg), 0)
	_ = store
}

// A cache in front of the store. The in-process cache holds up to 32 MiB
// of sessions, and serves a copy for up to 5 seconds before it asks
// DynamoDB again; a Delete on this instance is final at once, and a Commit
// through another instance's copy of a deleted session stores nothing.
func ExampleNewCached() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	backing := dynamostore.New(dynamodb.NewFromConfig(cfg))
	defer backing.StopCleanup()
	store := dynamostore.NewCached(backing, func(o *dynamostore.CacheOptions) {
		o.MaxBytes = 32 << 20
		o.MaxStale = 5 * time.Second
	})
	sessionManager := scs.New()
	sessionManager.Store = store
}

// Create the table once, at deployment or at start-up: it returns nil when the
// table already exists with the right key schema.
func ExampleCreateTable() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := dynamostore.CreateTable(ctx, dynamodb.NewFromConfig(cfg)); err != nil {
		log.Fatal(err)
	}
}

// Sweep expired sessions on your own schedule, from a cron job, say.
func ExampleDynamoStore_DeleteExpired() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	store := dynamostore.NewWithCleanupInterval(dynamodb.NewFromConfig(cfg), 0)
	n, err := store.DeleteExpired(ctx)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("deleted %d expired sessions", n)
}

// Log a user out everywhere after a password change: every session whose
// data holds the user's ID under "user_id" is found with a Query of the
// owner index and deleted, whether or not scs hashes tokens in the store.
func ExampleDynamoStore_DeleteOwner() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sessionManager := scs.New()
	sessionManager.HashTokenInStore = true
	store := dynamostore.New(dynamodb.NewFromConfig(cfg), func(o *dynamostore.Options) {
		o.Owner = dynamostore.SessionValue(sessionManager.Codec, "user_id")
	})
	defer store.StopCleanup()
	sessionManager.Store = store

	http.HandleFunc("POST /password", func(w http.ResponseWriter, r *http.Request) {
		userID := sessionManager.GetInt(r.Context(), "user_id")
		// ... change the password ...
		if _, err := store.DeleteOwner(r.Context(), strconv.Itoa(userID)); err != nil {
			http.Error(w, "could not log out other sessions", http.StatusInternalServerError)
			return
		}
		// A new token for this browser, which the revoke did not see
		// (RenewToken keeps the data, so the user stays logged in here).
		if err := sessionManager.RenewToken(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// A "your devices" page: each of the user's sessions with what the login
// stored in it and when it was last used, this device marked, and a
// button to log each out.
func ExampleDynamoStore_OwnerSessions() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sessionManager := scs.New()
	sessionManager.HashTokenInStore = true
	store := dynamostore.New(dynamodb.NewFromConfig(cfg), func(o *dynamostore.Options) {
		o.Owner = dynamostore.SessionValue(sessionManager.Codec, "user_id")
	})
	defer store.StopCleanup()
	sessionManager.Store = store

	http.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		userID := strconv.Itoa(sessionManager.GetInt(r.Context(), "user_id"))
		sessions, err := store.OwnerSessions(r.Context(), userID)
		if err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		current := store.CurrentSessionID(r.Context(), sessionManager)
		for _, s := range sessions {
			var agent string
			if _, values, err := sessionManager.Codec.Decode(s.Data); err == nil {
				agent, _ = values["user_agent"].(string) // stored at login
			}
			this := ""
			if s.ID == current {
				this = " (this device)"
			}
			fmt.Fprintf(w, "%s%s, last active %s <form method=post action=/devices/revoke><button name=id value=%s>Log out</button></form>\n",
				html.EscapeString(agent), this, s.LastWrite.Format(time.DateTime), s.ID)
		}
	})
	http.HandleFunc("POST /devices/revoke", func(w http.ResponseWriter, r *http.Request) {
		userID := strconv.Itoa(sessionManager.GetInt(r.Context(), "user_id"))
		// Only the user's own session: another user's ID revokes nothing.
		if _, err := store.DeleteOwnerSession(r.Context(), userID, r.PostFormValue("id")); err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
	})
}

// "Log out other devices": every session of the user but this one.
func ExampleDynamoStore_DeleteOwnerExcept() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sessionManager := scs.New()
	store := dynamostore.New(dynamodb.NewFromConfig(cfg), func(o *dynamostore.Options) {
		o.Owner = dynamostore.SessionValue(sessionManager.Codec, "user_id")
	})
	defer store.StopCleanup()
	sessionManager.Store = store

	http.HandleFunc("POST /devices/logout-others", func(w http.ResponseWriter, r *http.Request) {
		userID := strconv.Itoa(sessionManager.GetInt(r.Context(), "user_id"))
		n, err := store.DeleteOwnerExcept(r.Context(), userID, store.CurrentSessionID(r.Context(), sessionManager))
		if err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "logged out of %d other devices", n)
	})
}

// At most three sessions per user: the login keeps the two most recently
// used and revokes the rest before scs commits the new one, after the
// handler returns.
func ExampleDynamoStore_LimitOwner() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sessionManager := scs.New()
	store := dynamostore.New(dynamodb.NewFromConfig(cfg), func(o *dynamostore.Options) {
		o.Owner = dynamostore.SessionValue(sessionManager.Codec, "user_id")
	})
	defer store.StopCleanup()
	sessionManager.Store = store

	const maxSessions = 3
	http.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		userID := 42 // stand-in: the user whose password your login checked
		if _, err := store.LimitOwner(r.Context(), strconv.Itoa(userID), maxSessions-1); err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		if err := sessionManager.RenewToken(r.Context()); err != nil {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		sessionManager.Put(r.Context(), "user_id", userID)
		sessionManager.Put(r.Context(), "user_agent", r.UserAgent())
	})
}
