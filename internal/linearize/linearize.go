// Package linearize checks that a session store is linearizable for each
// token: it runs random concurrent Find, Commit and Delete calls against
// one or more handles on the store, records the history, and checks it with
// porcupine (github.com/anishathalye/porcupine) against a register per token
// that a Delete revokes for good, as dynamostore's revocations do. It is for
// the project's tests only.
package linearize

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Target is one handle on the store under test: one instance of it.
type Target struct {
	Find   func(ctx context.Context, token string) ([]byte, bool, error)
	Commit func(ctx context.Context, token string, data []byte, expiry time.Time) error
	Delete func(ctx context.Context, token string) error
}

// Config says what history to make.
type Config struct {
	Workers      int // goroutines calling at once
	OpsPerWorker int
	Tokens       int // tokens in use at once; a deleted one is replaced by a new one

	// RepeatData makes half of a worker's Commits write again the data it
	// last found for the token, as scs's IdleTimeout does, so that
	// CacheOptions.SkipWriteWithin has Commits to skip.
	RepeatData bool
}

// Counts are what a run did.
type Counts struct {
	Finds, Commits, Deletes int
}

func (c Counts) String() string {
	return fmt.Sprintf("%d operations (%d Find, %d Commit, %d Delete)", c.Finds+c.Commits+c.Deletes, c.Finds, c.Commits, c.Deletes)
}

// Jitter waits a random 0 to 4 ms, to be called before and after every
// call to a store's dependencies, so that the calls of different workers
// interleave in many orders. It is fault injection, not synchronisation.
func Jitter() {
	if d := rand.N(5 * time.Millisecond); d >= time.Millisecond {
		time.Sleep(d)
	}
}

type input struct {
	kind  byte // 'f', 'c' or 'd'
	token string
	data  string
}

type output struct {
	data  string
	found bool
}

// state is one token's register: its data ("" for none) and whether a
// Delete revoked it, after which no Commit stores it.
type state struct {
	data    string
	revoked bool
}

var model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byToken := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			t := op.Input.(input).token
			if _, ok := byToken[t]; !ok {
				order = append(order, t)
			}
			byToken[t] = append(byToken[t], op)
		}
		parts := make([][]porcupine.Operation, 0, len(order))
		for _, t := range order {
			parts = append(parts, byToken[t])
		}
		return parts
	},
	Init: func() any { return state{} },
	Step: func(s, in, out any) (bool, any) {
		st, i := s.(state), in.(input)
		switch i.kind {
		case 'f':
			o := out.(output)
			return o.found == (st.data != "") && o.data == st.data, st
		case 'c':
			if !st.revoked {
				st.data = i.data
			}
			return true, st
		}
		return true, state{revoked: true}
	},
	DescribeOperation: func(in, out any) string {
		i := in.(input)
		switch i.kind {
		case 'f':
			o := out.(output)
			return fmt.Sprintf("Find(%s) -> %q, %v", i.token, o.data, o.found)
		case 'c':
			return fmt.Sprintf("Commit(%s, %q)", i.token, i.data)
		}
		return fmt.Sprintf("Delete(%s)", i.token)
	},
}

// Run makes a history as cfg says, calling a target chosen at random for
// each operation, fails t on any error, and fails it unless porcupine
// finds the history linearizable. It returns what it ran.
func Run(t testing.TB, cfg Config, targets ...Target) Counts {
	t.Helper()
	var (
		clock   atomic.Int64 // a logical clock: call and return order
		mu      sync.Mutex
		history []porcupine.Operation
		counts  Counts
		gens    = make([]atomic.Int64, cfg.Tokens)
		run     = rand.Uint64()
		failed  atomic.Bool
	)
	ctx := context.Background()
	token := func(slot int) string { return fmt.Sprintf("lin-%x-%d-%d", run, slot, gens[slot].Load()) }
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(run, uint64(w)))
			seen := map[string]string{} // the data this worker last found, by token
			for n := range cfg.OpsPerWorker {
				if failed.Load() {
					return
				}
				target := targets[rng.IntN(len(targets))]
				slot := rng.IntN(cfg.Tokens)
				in := input{token: token(slot)}
				var out output
				var err error
				switch r := rng.IntN(100); {
				case r < 50:
					in.kind = 'f'
				case r < 90:
					in.kind = 'c'
					in.data = fmt.Sprintf("w%d-%d", w, n)
					if d, ok := seen[in.token]; cfg.RepeatData && ok && rng.IntN(2) == 0 {
						in.data = d
					}
				default:
					in.kind = 'd'
				}
				call := clock.Add(1)
				switch in.kind {
				case 'f':
					var b []byte
					b, out.found, err = target.Find(ctx, in.token)
					out.data = string(b)
					if out.found {
						seen[in.token] = out.data
					}
				case 'c':
					err = target.Commit(ctx, in.token, []byte(in.data), time.Now().Add(time.Hour))
				case 'd':
					err = target.Delete(ctx, in.token)
				}
				ret := clock.Add(1)
				if err != nil {
					failed.Store(true)
					t.Errorf("%s: %v", model.DescribeOperation(in, out), err)
					return
				}
				if in.kind == 'd' && rng.IntN(2) == 0 {
					// Move the slot on to a new token, now and then
					// leaving calls on the revoked one.
					gens[slot].Add(1)
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: w, Input: in, Output: out, Call: call, Return: ret})
				switch in.kind {
				case 'f':
					counts.Finds++
				case 'c':
					counts.Commits++
				default:
					counts.Deletes++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
	res, info := porcupine.CheckOperationsVerbose(model, history, 2*time.Minute)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := fmt.Sprintf("%s/linearizability.html", t.TempDir())
		if dir := artifactDir(t); dir != "" {
			path = dir + "/linearizability.html"
		}
		porcupine.VisualizePath(model, info, path)
		t.Fatalf("%s: not linearizable; porcupine's picture of the history: %s", counts, path)
	default:
		t.Fatalf("%s: porcupine could not decide in 2 minutes", counts)
	}
	return counts
}

// artifactDir returns the test's artifact folder, where go test -artifacts
// keeps what a test leaves, or "".
func artifactDir(t testing.TB) string {
	if a, ok := t.(interface{ ArtifactDir() string }); ok {
		return a.ArtifactDir()
	}
	return ""
}

// DynamoDB is the part of the DynamoDB API a dynamostore.Client has.
type DynamoDB interface {
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, params *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, params *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// JitterDynamoDB calls Jitter before and after each item request, so that
// concurrent requests reach DynamoDB and return in many orders.
type JitterDynamoDB struct{ DynamoDB }

func (c JitterDynamoDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	Jitter()
	defer Jitter()
	return c.DynamoDB.GetItem(ctx, in, optFns...)
}

func (c JitterDynamoDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	Jitter()
	defer Jitter()
	return c.DynamoDB.PutItem(ctx, in, optFns...)
}

func (c JitterDynamoDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	Jitter()
	defer Jitter()
	return c.DynamoDB.DeleteItem(ctx, in, optFns...)
}
