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

	// Seed, when set, is called with each token before any call on it,
	// to store the data the token starts with (Seeded(token)), as a
	// session an application stored before a move starts in the old
	// store. The model starts the token with that data.
	Seed func(ctx context.Context, token string, data []byte) error

	// Clear makes the model's Delete clear the token rather than revoke
	// it: a Commit after it stores the session again, as in a store
	// without revocations such as scs's memstore.
	Clear bool

	// NoDelete makes every call a Find or a Commit.
	NoDelete bool

	// Fresh checks the weaker promise instead of linearizability: no Find
	// returns data older than the last Commit or Delete that had returned
	// before the Find began (see CheckFresh). Finds that overlap a write
	// may disagree on its order, which linearizability forbids.
	Fresh bool
}

// Seeded returns the data Config.Seed stores for token.
func Seeded(token string) string { return "seed-" + token }

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
	fresh   bool // no call yet: the data is Seeded's, or none
}

// model returns the register model for cfg.
func model(cfg Config) porcupine.Model {
	return porcupine.Model{
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
		Init: func() any { return state{fresh: true} },
		Step: func(s, in, out any) (bool, any) {
			st, i := s.(state), in.(input)
			if st.fresh {
				st = state{}
				if cfg.Seed != nil {
					st.data = Seeded(i.token)
				}
			}
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
			return true, state{revoked: !cfg.Clear}
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
	m := model(cfg)
	name := func(slot int, gen int64) string { return fmt.Sprintf("lin-%x-%d-%d", run, slot, gen) }
	token := func(slot int) string { return name(slot, gens[slot].Load()) }
	seed := func(token string) error {
		if cfg.Seed == nil {
			return nil
		}
		return cfg.Seed(ctx, token, []byte(Seeded(token)))
	}
	for slot := range cfg.Tokens {
		if err := seed(token(slot)); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
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
				case r < 90 || cfg.NoDelete:
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
					t.Errorf("%s: %v", m.DescribeOperation(in, out), err)
					return
				}
				if in.kind == 'd' && rng.IntN(2) == 0 {
					// Move the slot on to a new token, now and then
					// leaving calls on the revoked one. The new token is
					// seeded before any worker can pick it.
					mu.Lock()
					next := gens[slot].Load() + 1
					if err := seed(name(slot, next)); err != nil {
						mu.Unlock()
						failed.Store(true)
						t.Errorf("seed: %v", err)
						return
					}
					gens[slot].Store(next)
					mu.Unlock()
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
	if cfg.Fresh {
		if bad := CheckFresh(cfg, history); bad != "" {
			t.Fatalf("%s: a Find saw data older than a write that returned before it began: %s", counts, bad)
		}
		return counts
	}
	res, info := porcupine.CheckOperationsVerbose(m, history, 2*time.Minute)
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := fmt.Sprintf("%s/linearizability.html", t.TempDir())
		if dir := artifactDir(t); dir != "" {
			path = dir + "/linearizability.html"
		}
		porcupine.VisualizePath(m, info, path)
		t.Fatalf("%s: not linearizable; porcupine's picture of the history: %s", counts, path)
	default:
		t.Fatalf("%s: porcupine could not decide in 2 minutes", counts)
	}
	return counts
}

// CheckFresh checks history, the operations on a register per token as
// Run records them, for the weaker promise of Config.Fresh, and returns a
// description of the first Find that breaks it, or "". A Find returning v
// keeps it when some write of v (a Commit of v, or for none a Delete or
// the token's start) began before the Find returned and no write began
// after it returned and returned before the Find began. Under the revoking
// model (Clear false) a Commit that began after a Delete returned writes
// nothing, and a Find that began after a Delete returned finds nothing.
func CheckFresh(cfg Config, history []porcupine.Operation) string {
	type write struct {
		value     string
		call, ret int64
		isDelete  bool
	}
	writes := map[string][]write{}
	for _, op := range history {
		i := op.Input.(input)
		if _, ok := writes[i.token]; !ok {
			start := ""
			if cfg.Seed != nil {
				start = Seeded(i.token)
			}
			writes[i.token] = []write{{value: start}} // the start, at time 0
		}
		switch i.kind {
		case 'c':
			writes[i.token] = append(writes[i.token], write{value: i.data, call: op.Call, ret: op.Return})
		case 'd':
			writes[i.token] = append(writes[i.token], write{call: op.Call, ret: op.Return, isDelete: true})
		}
	}
	// Under the revoking model, drop the Commits that write nothing.
	for token, ws := range writes {
		if cfg.Clear {
			continue
		}
		firstDeleteRet := int64(-1)
		for _, w := range ws {
			if w.isDelete && (firstDeleteRet < 0 || w.ret < firstDeleteRet) {
				firstDeleteRet = w.ret
			}
		}
		if firstDeleteRet < 0 {
			continue
		}
		kept := ws[:0:0]
		for _, w := range ws {
			if w.isDelete || w.call < firstDeleteRet {
				kept = append(kept, w)
			}
		}
		writes[token] = kept
	}
	m := model(cfg)
	for _, op := range history {
		i, o := op.Input.(input), op.Output.(output)
		if i.kind != 'f' {
			continue
		}
		ws := writes[i.token]
		// The latest call of a write that returned before the Find
		// began: a write that returned before it is superseded.
		var latest int64 = -1
		revoked := false
		for _, w := range ws {
			if w.ret < op.Call && w.call > latest {
				latest = w.call
			}
			revoked = revoked || (!cfg.Clear && w.isDelete && w.ret < op.Call)
		}
		ok := false
		for _, w := range ws {
			if revoked && !w.isDelete {
				continue // revoked before the Find began: no data
			}
			if w.value == o.data && w.call < op.Return && w.ret >= latest {
				ok = true
				break
			}
		}
		if !ok {
			what := fmt.Sprintf("%s, called at %d, returned at %d", m.DescribeOperation(i, o), op.Call, op.Return)
			for _, w := range ws {
				switch {
				case w.call == latest:
					what += fmt.Sprintf("; the last write to return before it was called at %d, returned at %d", w.call, w.ret)
				case w.value == o.data && !w.isDelete && w.call > 0:
					what += fmt.Sprintf("; the data was committed by a call at %d, returned at %d", w.call, w.ret)
				}
			}
			return what
		}
	}
	return ""
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
