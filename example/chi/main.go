// Command chi shows dynamostore in a chi router, through scs's LoadAndSave
// middleware, the way many scs apps run. It uses the standard AWS
// configuration (AWS_REGION, credentials, optionally AWS_ENDPOINT_URL_DYNAMODB)
// and a table made with `dynamostore create-table`.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/alexedwards/scs/v2"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/go-chi/chi/v5"

	"github.com/dynamostore/dynamostore"
)

func main() {
	// An idle connection for every request in flight; the SDK keeps 10.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
	})
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithHTTPClient(httpClient))
	if err != nil {
		log.Fatal(err)
	}
	store := dynamostore.New(dynamodb.NewFromConfig(cfg))
	defer store.StopCleanup()

	sessionManager := scs.New()
	sessionManager.Store = store
	log.Fatal(http.ListenAndServe("127.0.0.1:8081", newRouter(sessionManager)))
}

func newRouter(sm *scs.SessionManager) http.Handler {
	r := chi.NewRouter()
	r.Use(sm.LoadAndSave)
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		n := sm.GetInt(r.Context(), "n") + 1
		sm.Put(r.Context(), "n", n)
		fmt.Fprintf(w, "visit %d\n", n)
	})
	return r
}
