package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"

	"github.com/alexedwards/scs/v2"

	"github.com/dynamostore/dynamostore"
	"github.com/dynamostore/dynamostore/internal/ddblocal"
)

func TestChiRouter(t *testing.T) {
	srv, err := ddblocal.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	client := srv.Client()
	ddblocal.Setup(t, "CreateTable", func(ctx context.Context) error {
		return dynamostore.CreateTable(ctx, client)
	})
	sm := scs.New()
	sm.Store = dynamostore.NewWithCleanupInterval(client, 0)
	app := httptest.NewServer(newRouter(sm))
	defer app.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	for _, want := range []string{"visit 1\n", "visit 2\n"} {
		resp, err := browser.Get(app.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("got %q: expected %q", body, want)
		}
	}
}
