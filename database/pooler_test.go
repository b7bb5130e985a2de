package database_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskql/server/database"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// TestParallelWritesAndReadsSucceedThroughATransactionPooler pins issue
// 13's "any pooler, no flag": through PgBouncer in transaction mode,
// which keeps no prepared statement per client, with the URL as an
// operator pastes it, parallel creates and reads all succeed (pgx's
// default statement cache fails there with 42P05 and 26000), and the
// switch to statements that need nothing on the server is logged once.
func TestParallelWritesAndReadsSucceedThroughATransactionPooler(t *testing.T) {
	t.Parallel()
	bouncer := testutil.StartPgBouncer(t)
	// The PostgreSQL bus's writer notifies within grouped statements, or
	// in a transaction for a user id too long for that.
	bus := testutil.NewPostgresBus(t)
	tests := []struct {
		name   string
		notify bool
		user   string
	}{
		{"creates are single statements", false, "user"},
		{"creates are grouped statements, as with the PostgreSQL bus", true, "user"},
		{"creates are transactions, as for a long user id", true, strings.Repeat("u", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := testutil.NewPostgresDatabase(t)
			var log testutil.SyncBuffer
			db := open(t, database.Config{
				URL:    bouncer.URL(name),
				Logger: slog.New(slog.NewTextHandler(&log, nil)),
			})
			ctx := context.Background()
			if err := model.CreateSchema(ctx, db); err != nil {
				t.Fatalf("create schema through the pooler: %v", err)
			}
			tasks := model.NewTasks(db)
			if tt.notify {
				tasks.WriteWith(bus.Writer())
			}
			const workers, perWorker = 24, 10
			var failed atomic.Int64
			var firstErr sync.Once
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					ctx := testutil.AsUser(fmt.Sprintf("%s-%d", tt.user, w%6))
					for i := range perWorker {
						report := func(op string, err error) {
							failed.Add(1)
							firstErr.Do(func() { t.Errorf("%s: %v", op, err) })
						}
						task, err := tasks.Create(ctx, model.CreateTaskInput{Title: fmt.Sprintf("task %d of %d", i, w)})
						if err != nil {
							report("create", err)
							continue
						}
						if _, err := tasks.Get(ctx, fmt.Sprint(task.ID)); err != nil {
							report("get", err)
						}
						first := 5
						if _, err := tasks.List(ctx, model.TaskFilter{}, nil, model.PageArgs{First: &first}); err != nil {
							report("list", err)
						}
						if _, err := tasks.Stats(ctx); err != nil {
							report("stats", err)
						}
					}
				})
			}
			wg.Wait()
			var n int
			if err := db.NewRaw("SELECT count(*) FROM task").Scan(ctx, &n); err != nil {
				t.Fatal(err)
			}
			t.Logf("FIGURE pooler %s: %d creates, %d failed operations", tt.name, n, failed.Load())
			if n != workers*perWorker || failed.Load() != 0 {
				t.Fatalf("%d tasks and %d failed operations, want %d and none", n, failed.Load(), workers*perWorker)
			}
			// 24 workers on 4 server connections always collide: the pool
			// must have noticed, and said so once.
			if c := strings.Count(log.String(), "level=WARN"); c != 1 || !strings.Contains(log.String(), "unprepared") {
				t.Fatalf("the switch was logged %d times, want once:\n%s", c, log.String())
			}
		})
	}
}

// TestDirectConnectionsKeepPreparedStatements pins the other half: on a
// direct connection (and so on any pooler that keeps prepared statements)
// the pool keeps pgx's statement cache, with no switch and no warning.
func TestDirectConnectionsKeepPreparedStatements(t *testing.T) {
	t.Parallel()
	if !slices.Contains(testutil.Dialects(), testutil.Postgres) {
		t.Skip("TEST_DATABASE_URL is not set")
	}
	var log testutil.SyncBuffer
	db := open(t, database.Config{URL: testutil.URL(t, testutil.Postgres), Logger: slog.New(slog.NewTextHandler(&log, nil))})
	ctx := context.Background()
	if err := model.CreateSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	tasks := model.NewTasks(db)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			ctx := testutil.AsUser(fmt.Sprintf("user-%d", w))
			for range 5 {
				if _, err := tasks.Create(ctx, model.CreateTaskInput{Title: "t"}); err != nil {
					t.Error(err)
				}
				if _, err := tasks.Stats(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	// A query with a value on this connection is prepared and cached
	// (database/sql directly: Bun would write the value into the text).
	if err := conn.Conn.QueryRowContext(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'stmtcache_%' AND $1::int = 1", 1).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no cached prepared statement on a direct connection: the pool left pgx's statement cache")
	}
	// A rolled-back transaction leaves nothing behind.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Tx.ExecContext(ctx, "INSERT INTO task (user_id, title) VALUES ($1, $2)", "rolled-back", "t"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if err := db.DB.QueryRowContext(ctx, "SELECT count(*) FROM task WHERE user_id = $1", "rolled-back").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rolled-back tasks, %v", n, err)
	}
	if log.String() != "" {
		t.Fatalf("a direct connection logged:\n%s", log.String())
	}
}

// TestCheckDirectSaysWhatFailed pins that a direct URL that cannot be
// checked fails the boot with the reason, not a pooler verdict.
func TestCheckDirectSaysWhatFailed(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, url, want string }{
		{"unparsable URL", "postgres://u@h:port/db", "parse PostgreSQL URL"},
		{"nothing listening", "postgres://u:p@127.0.0.1:1/db?sslmode=disable&connect_timeout=5", "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := database.CheckDirect(ctx, tt.url)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), ":p@") {
				t.Fatalf("CheckDirect(%s) = %v, want an error starting %q without the password", tt.url, err, tt.want)
			}
		})
	}
}

// TestCheckDirectRefusesATransactionPooler pins the boot check of
// DATABASE_DIRECT_URL: LISTEN cannot work through a transaction-mode
// pooler, and a direct connection passes.
func TestCheckDirectRefusesATransactionPooler(t *testing.T) {
	t.Parallel()
	bouncer := testutil.StartPgBouncer(t)
	name := testutil.NewPostgresDatabase(t)
	tests := []struct {
		name, url string
		refused   bool
	}{
		{"a direct connection", bouncer.DirectURL(name), false},
		{"PgBouncer in transaction mode", bouncer.URL(name), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := database.CheckDirect(ctx, tt.url)
			if tt.refused != (err != nil) {
				t.Fatalf("CheckDirect(%s) = %v, want refused %v", tt.url, err, tt.refused)
			}
			if err != nil && (!strings.Contains(err.Error(), "transaction-mode pooler") || strings.Contains(err.Error(), "\n")) {
				t.Fatalf("error %q: want one line that says why", err)
			}
		})
	}
}
