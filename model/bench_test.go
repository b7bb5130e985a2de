package model_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// The model's share of the hot path, query building, SQL and scanning, on
// each database: `go test -run '^$' -bench . -benchmem ./model/`. The
// handler's share is in api/bench_test.go; bench/README.md compares runs.

// benchStore seeds users × perUser tasks on a fresh database of dialect d.
func benchStore(b *testing.B, d testutil.Dialect, users, perUser int) (*model.Tasks, *bun.DB) {
	b.Helper()
	db := testutil.NewDB(b, d)
	start := time.Now().Add(-time.Hour)
	desc := "Compare at least three quotes before deciding. Attach the signed form and keep a copy."
	for u := range users {
		tasks := make([]*model.Task, perUser)
		for i := range tasks {
			at := start.Add(time.Duration(i) * time.Millisecond)
			tasks[i] = &model.Task{UserID: benchUser(u), Title: fmt.Sprintf("Task %d", i), Description: &desc,
				Completed: i%2 == 0, CreatedAt: at, UpdatedAt: at}
		}
		for chunk := range chunks(tasks, 500) {
			if _, err := db.NewInsert().Model(&chunk).ExcludeColumn("id").Exec(context.Background()); err != nil {
				b.Fatalf("seed: %v", err)
			}
		}
	}
	return model.NewTasks(db), db
}

func benchUser(i int) string { return fmt.Sprintf("bench-user-%03d", i) }

// chunks yields s in slices of at most n, so that one INSERT stays under
// SQLite's limit of bound values.
func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// forEachDialect runs fn as a sub-benchmark per dialect.
func forEachDialect(b *testing.B, fn func(b *testing.B, d testutil.Dialect)) {
	for _, d := range testutil.Dialects() {
		b.Run(string(d), func(b *testing.B) { fn(b, d) })
	}
}

// BenchmarkList reads a first page of 20, as each of 20 users in turn.
func BenchmarkList(b *testing.B) {
	forEachDialect(b, func(b *testing.B, d testutil.Dialect) {
		s, _ := benchStore(b, d, 20, 200)
		ctxs := make([]context.Context, 20)
		for i := range ctxs {
			ctxs[i] = testutil.AsUser(benchUser(i))
		}
		first := 20
		b.ReportAllocs()
		defer testutil.ReportCPU(b)()
		i := 0
		for b.Loop() {
			p, err := s.List(ctxs[i%len(ctxs)], model.TaskFilter{}, nil, model.PageArgs{First: &first})
			i++
			if err != nil || len(p.Nodes) != first {
				b.Fatalf("List: %d tasks, %v", len(p.Nodes), err)
			}
		}
	})
}

// BenchmarkListDeep reads the page after a cursor deep in a list of 10,000.
func BenchmarkListDeep(b *testing.B) {
	forEachDialect(b, func(b *testing.B, d testutil.Dialect) {
		s, _ := benchStore(b, d, 1, 10_000)
		ctx := testutil.AsUser(benchUser(0))
		hundred := model.MaxPageSize
		var after *string
		for range 80 {
			p, err := s.List(ctx, model.TaskFilter{}, nil, model.PageArgs{First: &hundred, After: after})
			if err != nil {
				b.Fatalf("List: %v", err)
			}
			after = p.PageInfo.EndCursor()
		}
		first := 20
		b.ReportAllocs()
		defer testutil.ReportCPU(b)()
		for b.Loop() {
			p, err := s.List(ctx, model.TaskFilter{}, nil, model.PageArgs{First: &first, After: after})
			if err != nil || len(p.Nodes) != first {
				b.Fatalf("List: %d tasks, %v", len(p.Nodes), err)
			}
		}
	})
}

// BenchmarkCount is totalCount for a user with 200 tasks.
func BenchmarkCount(b *testing.B) {
	forEachDialect(b, func(b *testing.B, d testutil.Dialect) {
		s, _ := benchStore(b, d, 20, 200)
		ctx := testutil.AsUser(benchUser(0))
		b.ReportAllocs()
		defer testutil.ReportCPU(b)()
		for b.Loop() {
			if n, err := s.Count(ctx, model.TaskFilter{}); err != nil || n != 200 {
				b.Fatalf("Count = %d, %v", n, err)
			}
		}
	})
}

// BenchmarkCreate inserts a task, in its transaction.
func BenchmarkCreate(b *testing.B) {
	forEachDialect(b, func(b *testing.B, d testutil.Dialect) {
		s, _ := benchStore(b, d, 1, 0)
		ctx := testutil.AsUser(benchUser(0))
		desc := "Compare at least three quotes before deciding."
		in := model.CreateTaskInput{Title: "Renew the car insurance before Friday", Description: &desc}
		b.ReportAllocs()
		defer testutil.ReportCPU(b)()
		for b.Loop() {
			if _, err := s.Create(ctx, in); err != nil {
				b.Fatalf("Create: %v", err)
			}
		}
	})
}
