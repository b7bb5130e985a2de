package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// The hot path, handler → resolver → model → SQL, on each database, with
// allocation counts: `go test -run '^$' -bench . -benchmem ./api/`, and
// compare runs with benchstat (bench/README.md). The whole-server
// benchmark against the database's own limit is `go run ./bench`.

const (
	benchUsers = 20
	benchTasks = 200

	benchFields = `id title description completed createdAt updatedAt`
	benchList   = `{"query":"query Tasks { tasks(first: 20) { nodes { ` + benchFields + ` } } }"}`
	benchCount  = `{"query":"query Tasks { tasks(first: 20) { nodes { ` + benchFields + ` } totalCount } }"}`
	benchCreate = `{"query":"mutation Create($input: CreateTaskInput!) { createTask(input: $input) { ` + benchFields + ` } }",` +
		`"variables":{"input":{"title":"Renew the car insurance before Friday","description":"Compare at least three quotes before deciding."}}}`
)

// benchHandler is api.New as the server builds it (production logging,
// written nowhere) over a database of dialect d seeded with benchUsers
// users of benchTasks tasks each, and a token per user. configure, if
// given, adjusts the configuration.
func benchHandler(b *testing.B, d testutil.Dialect, configure ...func(*api.Config)) (http.Handler, []string) {
	b.Helper()
	db := testutil.NewDB(b, d)
	ctx := context.Background()
	start := time.Now().Add(-time.Hour)
	tokens := make([]string, benchUsers)
	for u := range benchUsers {
		uid := fmt.Sprintf("bench-user-%02d", u)
		desc := "Compare at least three quotes before deciding. Attach the signed form and keep a copy."
		tasks := make([]*model.Task, benchTasks)
		for i := range tasks {
			at := start.Add(time.Duration(i) * time.Second)
			tasks[i] = &model.Task{UserID: uid, Title: fmt.Sprintf("Task %d of %s", i, uid), Description: &desc,
				Completed: i%2 == 0, CreatedAt: at, UpdatedAt: at}
		}
		if _, err := db.NewInsert().Model(&tasks).ExcludeColumn("id").Exec(ctx); err != nil {
			b.Fatalf("seed: %v", err)
		}
		tok, err := auth.Mint(testSecret, auth.MintClaims{Subject: uid})
		if err != nil {
			b.Fatalf("mint: %v", err)
		}
		tokens[u] = tok
	}
	verifier, err := auth.New(ctx, auth.Config{Secret: testSecret})
	if err != nil {
		b.Fatalf("auth.New: %v", err)
	}
	cfg := api.Config{
		Tasks:    model.NewTasks(db),
		Verifier: verifier,
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		// The benchmark measures the path, not the budget: 20 users
		// running as fast as the handler allows exceed the default.
		Limits: api.Limits{CostRefill: 1e9, CostBudget: 1 << 40},
	}
	for _, c := range configure {
		c(&cfg)
	}
	return api.New(cfg), tokens
}

// benchPost runs body through h as each user in turn, b.N times in all,
// failing on any answer but a 200 without errors.
func benchPost(b *testing.B, body string, configure ...func(*api.Config)) {
	for _, d := range testutil.Dialects() {
		b.Run(string(d), func(b *testing.B) { benchPostOn(b, d, body, configure...) })
	}
}

func benchPostOn(b *testing.B, d testutil.Dialect, body string, configure ...func(*api.Config)) {
	{
		h, tokens := benchHandler(b, d, configure...)
		b.ReportAllocs()
		defer testutil.ReportCPU(b)()
		i := 0
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
			i++
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"errors"`) {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
}

// BenchmarkListTasks is the read of the load test: a user's first page.
func BenchmarkListTasks(b *testing.B) { benchPost(b, benchList) }

// BenchmarkListTasksWithoutFastPath is the same read with every field
// marshalled by gqlgen (fastpath.go off): what the fast path saves, in the
// same run.
func BenchmarkListTasksWithoutFastPath(b *testing.B) {
	benchPost(b, benchList, func(c *api.Config) { *c = api.WithoutFastPath(*c) })
}

// BenchmarkListTasksCounted adds totalCount, a count(*) over the user's
// tasks.
func BenchmarkListTasksCounted(b *testing.B) { benchPost(b, benchCount) }

// BenchmarkCreateTask is the write of the load test.
func BenchmarkCreateTask(b *testing.B) { benchPost(b, benchCreate) }

// BenchmarkNewDocumentUnderTheSizeLimits validates, each iteration anew
// (one alias changes, so the parsed-document cache never holds it), the
// worst document we could build under the selection limits: as many
// fields as allowed, in sets as wide as allowed, each all of one name, the
// case that makes gqlparser's overlapping-fields rule quadratic (merging
// same-named fields' sets costs the same: the width bound is on the
// merged set). The
// standard introspection query, also anew each time, is the baseline of
// the same run; compare their cpu-ns/op.
func BenchmarkNewDocumentUnderTheSizeLimits(b *testing.B) {
	widest := repeated((api.DefaultMaxSelections-1)/(api.DefaultMaxSetSelections+2),
		"a%d: __schema { queryType { "+strings.Repeat("name ", api.DefaultMaxSetSelections)+"} }")
	for _, bb := range []struct{ name, doc string }{
		{"standard introspection", strings.Replace(introspectionQuery, "queryType { name }", "queryType { n%d: name }", 1)},
		{"widest sets, most selections", "{ x%d: __typename " + widest + "}"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			h := api.New(api.Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
			b.ReportAllocs()
			defer testutil.ReportCPU(b)()
			i := 0
			for b.Loop() {
				doc := strings.ReplaceAll(bb.doc, "%d", fmt.Sprint(i))
				i++
				body, _ := json.Marshal(map[string]string{"query": doc})
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"errors"`) {
					b.Fatalf("status %d: %.300s", rec.Code, rec.Body)
				}
			}
		})
	}
}
