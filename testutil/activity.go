package testutil

import (
	"context"
	"database/sql"
	"net/url"
	"testing"
	"time"
)

// What a test sees of its PostgreSQL sessions from the server's side. Tests
// share one database, so each names its connections with an
// application_name of its own (WithApplicationName) and reads
// pg_stat_activity for that name alone.

// WithApplicationName returns the PostgreSQL URL rawURL with a fresh
// application_name, and that name: every connection opened with the URL
// shows it in pg_stat_activity.
func WithApplicationName(t testing.TB, rawURL, prefix string) (string, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parse %q: %v", rawURL, err)
	}
	name := prefix + "_" + randomHex(6)
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String(), name
}

// Backend is one session of pg_stat_activity.
type Backend struct {
	PID   int
	State string
	Query string
	// QueryStart is when its last statement began: a statement sent
	// since an earlier snapshot moves it.
	QueryStart time.Time
}

// Backends returns the sessions whose application_name is name, by pid.
func Backends(t testing.TB, name string) map[int]Backend {
	t.Helper()
	admin := adminDB(t)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := admin.QueryContext(ctx, `SELECT pid, coalesce(state, ''), query, coalesce(query_start, backend_start)
		FROM pg_stat_activity WHERE application_name = $1`, name)
	if err != nil {
		t.Fatalf("read pg_stat_activity: %v", err)
	}
	defer rows.Close()
	out := map[int]Backend{}
	for rows.Next() {
		var b Backend
		if err := rows.Scan(&b.PID, &b.State, &b.Query, &b.QueryStart); err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		out[b.PID] = b
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read pg_stat_activity: %v", err)
	}
	return out
}

// StatementsSince counts the sessions of after that sent a statement since
// before was taken: new sessions, and those whose last statement is newer.
// A session that merely closed sent none.
func StatementsSince(before, after map[int]Backend) int {
	n := 0
	for pid, b := range after {
		if was, ok := before[pid]; !ok || !b.QueryStart.Equal(was.QueryStart) {
			n++
		}
	}
	return n
}

// TerminateBackends ends, as a database restart or a suspending Neon
// compute would, the sessions whose application_name is name, and returns
// how many it ended.
func TerminateBackends(t testing.TB, name string) int {
	t.Helper()
	admin := adminDB(t)
	defer admin.Close()
	var n int
	err := admin.QueryRowContext(context.Background(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, name).Scan(&n)
	if err != nil {
		t.Fatalf("terminate the sessions of %s: %v", name, err)
	}
	return n
}

// adminDB opens TEST_DATABASE_URL, where pg_stat_activity shows every
// test's sessions; it skips the test without one, as URL does.
func adminDB(t testing.TB) *sql.DB {
	t.Helper()
	base := testDatabaseURLString(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	return admin
}
