package database_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskql/server/database"
	"github.com/taskql/server/testutil"
)

// TestWithPgxRefusesAPoolThatIsNotPgx pins that SQLite's pool is told
// apart, so a caller falls back to database/sql and fn never runs.
func TestWithPgxRefusesAPoolThatIsNotPgx(t *testing.T) {
	t.Parallel()
	db := open(t, database.Config{URL: "sqlite::memory:"})
	err := database.WithPgx(context.Background(), db.DB, func(*pgx.Conn) error {
		t.Fatal("fn ran on SQLite")
		return nil
	})
	if !errors.Is(err, database.ErrNotPgx) {
		t.Fatalf("WithPgx on SQLite = %v, want ErrNotPgx", err)
	}
}

// TestWithPgxRunsOnAPooledConnection pins that fn gets a pgx connection
// of the pool, set up as the pool's are (times in UTC), that its error
// comes back, and that the connection returns to the pool.
func TestWithPgxRunsOnAPooledConnection(t *testing.T) {
	t.Parallel()
	if !slices.Contains(testutil.Dialects(), testutil.Postgres) {
		t.Skip("TEST_DATABASE_URL is not set")
	}
	db := open(t, database.Config{URL: testutil.URL(t, testutil.Postgres) + "&timezone=America%2FNew_York", MaxOpenConns: 1})
	ctx := context.Background()
	for range 3 { // one connection: each call must have given it back
		var tm time.Time
		err := database.WithPgx(ctx, db.DB, func(c *pgx.Conn) error {
			return c.QueryRow(ctx, "SELECT $1::timestamptz", database.PlanPerCall, "2026-01-02 03:04:05+00").Scan(&tm)
		})
		if err != nil || !tm.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || tm.Location() != time.UTC {
			t.Fatalf("read %v in %v, %v; want 2026-01-02 03:04:05 in UTC", tm, tm.Location(), err)
		}
	}
	boom := errors.New("boom")
	if err := database.WithPgx(ctx, db.DB, func(*pgx.Conn) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("WithPgx returned %v, want fn's error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := database.WithPgx(cctx, db.DB, func(*pgx.Conn) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("WithPgx with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestWithPgxRunsAgainOnAConnectionBrokenBeforeSending pins database/sql's
// retry on the native path: fn that meets a closed connection, before
// sending anything, runs again on another, and the broken one is not
// pooled again.
func TestWithPgxRunsAgainOnAConnectionBrokenBeforeSending(t *testing.T) {
	t.Parallel()
	if !slices.Contains(testutil.Dialects(), testutil.Postgres) {
		t.Skip("TEST_DATABASE_URL is not set")
	}
	db := open(t, database.Config{URL: testutil.URL(t, testutil.Postgres), MaxOpenConns: 1})
	ctx := context.Background()
	var conns []*pgx.Conn
	var n int
	err := database.WithPgx(ctx, db.DB, func(c *pgx.Conn) error {
		conns = append(conns, c)
		if len(conns) == 1 {
			c.Close(ctx) // broken as a dropped socket is, before the query
		}
		return c.QueryRow(ctx, "SELECT 1", database.PlanPerCall).Scan(&n)
	})
	if err != nil || n != 1 || len(conns) != 2 || conns[0] == conns[1] {
		t.Fatalf("n = %d, %v after %d attempts; want 1 on a second connection", n, err, len(conns))
	}
	// Always broken: the error comes back after the attempts.
	attempts := 0
	err = database.WithPgx(ctx, db.DB, func(c *pgx.Conn) error {
		attempts++
		c.Close(ctx)
		return c.QueryRow(ctx, "SELECT 1", database.PlanPerCall).Scan(&n)
	})
	if err == nil || attempts != 3 {
		t.Fatalf("%v after %d attempts, want an error after 3", err, attempts)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("the pool kept a broken connection: %v", err)
	}
}
