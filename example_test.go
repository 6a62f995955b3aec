package dynamostore_test

import (
	"context"
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
