package database_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/taskql/server/database"
	"github.com/taskql/server/testutil"
)

func open(t *testing.T, cfg database.Config) *bun.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", cfg.URL, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenSQLiteMemoryKeepsOneConnectionSoTheDatabasePersists(t *testing.T) {
	t.Parallel()
	db := open(t, database.Config{URL: "sqlite::memory:", MaxOpenConns: 10, MaxIdleConns: 10})
	if db.Dialect().Name() != dialect.SQLite {
		t.Fatalf("dialect %v, want SQLite", db.Dialect().Name())
	}
	if n := db.DB.Stats().MaxOpenConnections; n != 1 {
		t.Fatalf("MaxOpenConnections = %d, want 1: each :memory: connection is a database of its own", n)
	}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x integer)"); err != nil {
		t.Fatal(err)
	}
	// Queries from several goroutines all see the one database.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (?)", i); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var n int
	if err := db.NewRaw("SELECT count(*) FROM t").Scan(ctx, &n); err != nil || n != 8 {
		t.Fatalf("count = %d, %v; want 8", n, err)
	}
}

func TestOpenSQLiteFileAtRelativeAndAbsolutePaths(t *testing.T) {
	// t.Chdir: not parallel.
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		name, url, file string
	}{
		{"relative path", "sqlite://rel.db", filepath.Join(dir, "rel.db")},
		{"relative path in a subdirectory", "sqlite://sub/rel.db", filepath.Join(dir, "sub", "rel.db")},
		{"absolute path", "sqlite://" + filepath.Join(dir, "abs.db"), filepath.Join(dir, "abs.db")},
		{"absolute path with a space", "sqlite://" + filepath.Join(dir, "with space", "a b.db"), filepath.Join(dir, "with space", "a b.db")},
		{"path with a percent sign", "sqlite://100%41/p%20q.db", filepath.Join(dir, "100%41", "p%20q.db")},
	}
	for _, sub := range []string{"sub", "with space", "100%41"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t, database.Config{URL: tt.url})
			if _, err := db.ExecContext(context.Background(), "CREATE TABLE t (x integer)"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(tt.file); err != nil {
				t.Fatalf("%s did not create %s: %v", tt.url, tt.file, err)
			}
			if n := db.DB.Stats().MaxOpenConnections; n != database.DefaultMaxOpenConns {
				t.Fatalf("MaxOpenConnections = %d, want the default %d", n, database.DefaultMaxOpenConns)
			}
		})
	}
}

func TestOpenRefusesUnsupportedURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"",
		"mysql://root@localhost/db",
		"http://example.com/db",
		"sqlite:",
		"sqlite://",
		"sqlite:todo.db",
		"sqlite:/abs/todo.db",
		"sqlite://todo.db?mode=ro",
		"sqlite://todo.db#frag",
		"sqlite::memory:?cache=shared",
		"SQLITE://todo.db",
		"postgres:/db",
		"postgres//db",
		"file:todo.db",
	} {
		db, err := database.Open(context.Background(), database.Config{URL: u})
		if !errors.Is(err, database.ErrUnsupportedURL) {
			t.Errorf("Open(%q) = %v, want ErrUnsupportedURL", u, err)
		}
		if db != nil {
			db.Close()
			t.Errorf("Open(%q) returned a database with its error", u)
		}
	}
}

func TestOpenFailsWhenTheDatabaseCannotBeReached(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url string
	}{
		{"SQLite file in a missing directory", "sqlite://" + filepath.Join(t.TempDir(), "missing", "dir", "x.db")},
		{"PostgreSQL host refusing connections", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5"},
		{"postgresql scheme, unreachable host", "postgresql://u:p@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"},
		{"malformed PostgreSQL URL", "postgres://u@host:notaport/db"},
		{"unknown sslmode", "postgres://u@127.0.0.1/db?sslmode=sometimes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			db, err := database.Open(ctx, database.Config{URL: tt.url})
			if err == nil || errors.Is(err, database.ErrUnsupportedURL) {
				t.Fatalf("Open(%q) = %v, want a connection error", tt.url, err)
			}
			if db != nil {
				t.Fatal("Open returned a database with its error")
			}
			if strings.Contains(err.Error(), ":p@") {
				t.Fatalf("the error %q shows the password", err)
			}
		})
	}
}

func TestSQLitePragmasApplyToEveryPooledConnection(t *testing.T) {
	t.Parallel()
	const conns = 4
	db := open(t, database.Config{URL: testutil.URL(t, testutil.SQLite), MaxOpenConns: conns})
	ctx := context.Background()
	// Hold conns connections at once, so that each is a different one.
	var held []*bun.Conn
	for range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, &c)
	}
	for i, c := range held {
		var mode string
		var busy, fk int
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || busy < 5000 || fk != 1 {
			t.Errorf("connection %d: journal_mode %q, busy_timeout %d, foreign_keys %d; want wal, >= 5000, 1", i, mode, busy, fk)
		}
	}
	for _, c := range held {
		c.Close()
	}
	if n := db.DB.Stats().OpenConnections; n != conns {
		t.Fatalf("%d open connections, want the %d held", n, conns)
	}
}

func TestSQLiteTransactionsTakeTheWriteLockAtBegin(t *testing.T) {
	t.Parallel()
	db := open(t, database.Config{URL: testutil.URL(t, testutil.SQLite)})
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (x integer)"); err != nil {
		t.Fatal(err)
	}
	// BEGIN IMMEDIATE takes the write lock before any statement: a writer
	// on another connection waits until the transaction ends. (A deferred
	// BEGIN would let it write at once.)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1)")
		done <- err
	}()
	select {
	case err := <-done:
		tx.Rollback()
		t.Fatalf("a writer went ahead while a transaction was open (%v): BEGIN is not IMMEDIATE", err)
	case <-time.After(150 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the waiting writer failed: %v (busy_timeout should let it wait)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting writer never finished")
	}
}

func TestPoolSizesAreApplied(t *testing.T) {
	t.Parallel()
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		url := testutil.URL(t, d)
		for _, tt := range []struct {
			cfg  database.Config
			want int
		}{
			{database.Config{URL: url}, database.DefaultMaxOpenConns},
			{database.Config{URL: url, MaxOpenConns: -3}, database.DefaultMaxOpenConns},
			{database.Config{URL: url, MaxOpenConns: 3, MaxIdleConns: 2, ConnMaxLifetime: time.Minute}, 3},
			{database.Config{URL: url, MaxOpenConns: 40}, 40},
		} {
			db := open(t, tt.cfg)
			if n := db.DB.Stats().MaxOpenConnections; n != tt.want {
				t.Errorf("%+v: MaxOpenConnections = %d, want %d", tt.cfg, n, tt.want)
			}
			db.Close()
		}
	})
}

// TestIdleConnectionsCloseAfterTheIdleTimeNotTheLifetime pins that
// ConnMaxIdleTime is a setting of its own: a connection unused for that
// long is closed while its lifetime is far from over (it once was the
// lifetime, so an idle pool held its connections for as long).
func TestIdleConnectionsCloseAfterTheIdleTimeNotTheLifetime(t *testing.T) {
	t.Parallel()
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		db := open(t, database.Config{URL: testutil.URL(t, d), ConnMaxIdleTime: 50 * time.Millisecond, ConnMaxLifetime: time.Hour})
		if err := db.PingContext(context.Background()); err != nil {
			t.Fatalf("ping: %v", err)
		}
		// database/sql's cleaner runs at most once a second.
		deadline := time.Now().Add(5 * time.Second)
		for db.DB.Stats().MaxIdleTimeClosed == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no connection closed for idleness within 5s: %+v", db.DB.Stats())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if st := db.DB.Stats(); st.MaxLifetimeClosed != 0 || st.Idle != 0 {
			t.Fatalf("pool %+v, want the idle connection closed for idleness, none for age", st)
		}
	})
}

func TestPostgresTimesAreReadInUTCWhateverTheSessionTimeZone(t *testing.T) {
	t.Parallel()
	if !slices.Contains(testutil.Dialects(), testutil.Postgres) {
		t.Skip("TEST_DATABASE_URL is not set")
	}
	url := testutil.URL(t, testutil.Postgres) + "&timezone=America%2FNew_York"
	db := open(t, database.Config{URL: url})
	if db.Dialect().Name() != dialect.PG {
		t.Fatalf("dialect %v, want PostgreSQL", db.Dialect().Name())
	}
	ctx := context.Background()
	var zone string
	var tm time.Time
	err := db.NewRaw("SELECT current_setting('TimeZone'), '2026-01-02 03:04:05.123456+00'::timestamptz").Scan(ctx, &zone, &tm)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	if zone != "America/New_York" || !tm.Equal(want) || tm.Location() != time.UTC {
		t.Fatalf("session zone %q, time %v in %v; want America/New_York and %v in UTC", zone, tm, tm.Location(), want)
	}
	// Every pooled connection reads UTC.
	for range 3 {
		var now time.Time
		if err := db.NewRaw("SELECT now()").Scan(ctx, &now); err != nil || now.Location() != time.UTC {
			t.Fatalf("now() = %v in %v, %v", now, now.Location(), err)
		}
	}
}

func TestIsPostgres(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]bool{
		"postgres://h/db":   true,
		"postgresql://h/db": true,
		"postgres:/h":       false,
		"sqlite://x.db":     false,
		"":                  false,
	} {
		if got := database.IsPostgres(u); got != want {
			t.Errorf("IsPostgres(%q) = %v, want %v", u, got, want)
		}
	}
}
