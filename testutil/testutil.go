// Package testutil gives tests fresh databases of each dialect and users
// in the context.
//
// Every test database is new: a temporary SQLite file, or a schema of its
// own in the PostgreSQL named by TEST_DATABASE_URL, dropped afterwards. So
// tests run in parallel and can be rerun. When TEST_REQUIRE_POSTGRES=1 (as
// in CI), a missing or unreachable PostgreSQL fails the test instead of
// skipping it.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for schema setup
	"github.com/uptrace/bun"

	"github.com/taskql/server/database"
	"github.com/taskql/server/model"
)

// Dialect names a database the suite runs against.
type Dialect string

// The dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Dialects returns the dialects to run against: SQLite always, PostgreSQL
// when TEST_DATABASE_URL is set or required.
func Dialects() []Dialect {
	if os.Getenv("TEST_DATABASE_URL") != "" || os.Getenv("TEST_REQUIRE_POSTGRES") == "1" {
		return []Dialect{SQLite, Postgres}
	}
	return []Dialect{SQLite}
}

// ForEachDialect runs fn as a parallel subtest per dialect.
func ForEachDialect(t *testing.T, fn func(t *testing.T, d Dialect)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// ForEachDB runs fn as a parallel subtest per dialect, each with a fresh
// database whose task table exists.
func ForEachDB(t *testing.T, fn func(t *testing.T, db *bun.DB)) {
	t.Helper()
	ForEachDialect(t, func(t *testing.T, d Dialect) {
		fn(t, NewDB(t, d))
	})
}

// NewDB opens a fresh database of dialect d with the task table created.
func NewDB(t testing.TB, d Dialect) *bun.DB {
	t.Helper()
	db := OpenEmpty(t, d)
	if err := model.CreateSchema(context.Background(), db); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	return db
}

// OpenEmpty opens a fresh, empty database of dialect d, closed when the
// test ends.
func OpenEmpty(t testing.TB, d Dialect) *bun.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, database.Config{URL: URL(t, d)})
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// URL returns the URL of a fresh, empty database of dialect d, removed
// when the test ends: a temporary SQLite file, or a PostgreSQL URL whose
// search_path is a new schema.
func URL(t testing.TB, d Dialect) string {
	t.Helper()
	if d == SQLite {
		return "sqlite://" + filepath.Join(t.TempDir(), "test.db")
	}
	base := testDatabaseURLString(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := "test_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		// Unreachable PostgreSQL fails here; it is never a silent skip.
		t.Fatalf("create schema on TEST_DATABASE_URL: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// CreateUserTable creates the user table as Better Auth does, for tests of
// the model that reads it. The server itself never creates it.
func CreateUserTable(t testing.TB, db *bun.DB) {
	t.Helper()
	ts := "timestamptz"
	if db.Dialect().Name().String() == "sqlite" {
		ts = "timestamp"
	}
	_, err := db.ExecContext(context.Background(), `CREATE TABLE "user" (
		id text PRIMARY KEY,
		name text NOT NULL,
		email text NOT NULL UNIQUE,
		"emailVerified" boolean NOT NULL DEFAULT false,
		image text,
		"createdAt" `+ts+` NOT NULL DEFAULT CURRENT_TIMESTAMP,
		"updatedAt" `+ts+` NOT NULL DEFAULT CURRENT_TIMESTAMP
	)`)
	if err != nil {
		t.Fatalf("create user table: %v", err)
	}
}

// AsUser returns a context in which the model acts for the user id.
func AsUser(id string) context.Context {
	return model.NewContext(context.Background(), model.Viewer{ID: id})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Ptr returns a pointer to a copy of v, for the optional fields of inputs
// and filters.
func Ptr[T any](v T) *T { return &v }

// testDatabaseURLString is TEST_DATABASE_URL; the test is skipped without
// it, or fails when TEST_REQUIRE_POSTGRES=1.
func testDatabaseURLString(t testing.TB) string {
	t.Helper()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		if os.Getenv("TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal("TEST_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
		}
		t.Skip("TEST_DATABASE_URL is not set")
	}
	return raw
}
