//go:build faults

package faults

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskql/server/database"
	"github.com/taskql/server/testutil"
)

// TestPostgresRestartDuringLoad stops PostgreSQL for three seconds under a
// mixed read/write load and starts it again: /readyz turns 503 and back to
// 200, requests fail fast with a clean error while it is down and succeed
// after without a server restart, and every acknowledged create is there.
func TestPostgresRestartDuringLoad(t *testing.T) {
	pg := testutil.StartPostgresCluster(t)
	srv := startServer(t, "DATABASE_URL="+pg.URL())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := load(ctx, t, srv, 8, true, false)
	ready := probeReady(ctx, srv)

	time.Sleep(2 * time.Second)
	stopped := time.Now()
	pg.Stop(t)
	down := time.Now()
	time.Sleep(3 * time.Second)
	starting := time.Now()
	pg.Start(t)
	up := time.Now()
	time.Sleep(4 * time.Second)
	cancel()
	all, changes := results(), ready()

	before, during, after := between(all, time.Time{}, stopped), between(all, down, starting), between(all, up, time.Now())
	figure(t, "load: 8 workers, each alternating createTask and a page of tasks with totalCount and taskStats")
	figure(t, "before the stop (2s): %v", summarize(before))
	figure(t, "while stopping (fast shutdown, %v): %v", down.Sub(stopped).Round(time.Millisecond), summarize(between(all, stopped, down)))
	figure(t, "while PostgreSQL was down (%v): %v", starting.Sub(down).Round(time.Millisecond), summarize(during))
	figure(t, "while starting (pg_ctl start -w, %v): %v", up.Sub(starting).Round(time.Millisecond), summarize(between(all, starting, up)))
	figure(t, "after it came back (4s): %v", summarize(after))
	var firstOK time.Time
	for _, o := range after {
		if o.ok() && (firstOK.IsZero() || o.start.Before(firstOK)) {
			firstOK = o.start
		}
	}
	figure(t, "first success %v after PostgreSQL was up", firstOK.Sub(up).Round(time.Millisecond))
	figure(t, "/readyz: %v", describeReadiness(changes, stopped))

	// While down, every request failed, quickly and cleanly.
	d := summarize(during)
	if d.ok != 0 || d.total == 0 {
		t.Errorf("while down: %v", d)
	}
	if d.failedMax > time.Second {
		t.Errorf("while down, a request took %v to fail", d.failedMax)
	}
	for _, o := range during {
		if o.status != http.StatusOK || (o.code != "INTERNAL_SERVER_ERROR" && o.code != "TIMEOUT") {
			t.Errorf("while down: status %d code %q, want 200 with INTERNAL_SERVER_ERROR (transport error %v)", o.status, o.code, o.transport)
			break
		}
	}
	// A second after it is back, everything succeeds again.
	if late := summarize(between(all, up.Add(time.Second), time.Now())); late.failed != 0 || late.ok == 0 {
		t.Errorf("a second after PostgreSQL came back: %v", late)
	}
	if !sawReadiness(changes, stopped, http.StatusServiceUnavailable, http.StatusOK) {
		t.Errorf("/readyz did not go 503 then 200: %v", describeReadiness(changes, stopped))
	}
	acked := acknowledged(all)
	gone := missing(t, pg.Open(t), acked)
	figure(t, "creates acknowledged %d, found in the database %d", len(acked), len(acked)-len(gone))
	if len(gone) > 0 {
		t.Errorf("%d acknowledged creates are missing: %v", len(gone), gone[:min(len(gone), 10)])
	}
}

// TestSlowDatabase holds a lock on the task table from another session
// while a load waits for it: requests end at the execution timeout with
// TIMEOUT, their queries are cancelled (no session keeps waiting), the pool
// does not deadlock, and the server serves again as soon as the lock goes.
func TestSlowDatabase(t *testing.T) {
	const timeout = time.Second
	pg := testutil.StartPostgresCluster(t)
	srv := startServer(t, "DATABASE_URL="+pg.URL(), "GRAPHQL_EXECUTION_TIMEOUT=1s", "DB_MAX_OPEN_CONNS=5")
	admin := pg.Open(t)
	// The schema exists once the server is up; warm it with one task.
	if o := newClient(t, srv, "warm", true).create("warm"); !o.ok() {
		t.Fatalf("warm-up create: %+v", o)
	}

	tx, lockPID := lockTable(t, admin, "ACCESS EXCLUSIVE")
	locked := time.Now()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// 20 workers for 5 pooled connections.
	results := load(ctx, t, srv, 20, true, false)
	time.Sleep(3500 * time.Millisecond)
	// The fewest of a few readings: a query cancelled at its timeout is
	// cancelled on the server by a request pgx sends as it drops the
	// connection, while the pool already opens the next one, so a single
	// reading may catch one of each for a moment. A pile-up of cancelled
	// queries stays in every reading.
	waiting := countBlocked(t, admin, lockPID)
	for range 4 {
		time.Sleep(20 * time.Millisecond)
		waiting = min(waiting, countBlocked(t, admin, lockPID))
	}
	tx.Rollback()
	released := time.Now()
	time.Sleep(2 * time.Second)
	cancel()
	all := results()

	during, after := between(all, locked, released.Add(-timeout)), between(all, released, time.Now())
	figure(t, "load: 20 workers on a pool of 5 connections, GRAPHQL_EXECUTION_TIMEOUT=1s, task table locked for %v", released.Sub(locked).Round(time.Millisecond))
	figure(t, "while locked: %v", summarize(during))
	figure(t, "sessions waiting for the lock just before it was released: %d (at most the pool's 5)", waiting)
	figure(t, "after the release (2s): %v", summarize(after))

	for _, o := range during {
		if o.ok() || o.code != "TIMEOUT" {
			t.Errorf("while locked: status %d code %q, want TIMEOUT", o.status, o.code)
			break
		}
		if o.took < timeout-50*time.Millisecond || o.took > timeout+time.Second {
			t.Errorf("while locked: a request answered after %v, want about %v", o.took, timeout)
			break
		}
	}
	if len(during) == 0 {
		t.Error("no request ran while the table was locked")
	}
	if waiting > 5 {
		t.Errorf("%d sessions wait for the lock: cancelled queries pile up on the server", waiting)
	}
	if a := summarize(between(all, released.Add(timeout+100*time.Millisecond), time.Now())); a.failed != 0 || a.ok == 0 {
		t.Errorf("after the release: %v", a)
	}
	acked := acknowledged(all)
	gone := missing(t, admin, acked)
	figure(t, "creates acknowledged %d, found in the database %d", len(acked), len(acked)-len(gone))
	if len(gone) > 0 {
		t.Errorf("%d acknowledged creates are missing", len(gone))
	}
}

// TestSIGTERMDuringLoad sends SIGTERM while creates are blocked inside the
// database and a load runs: the accepted requests complete, the process
// exits 0 within the grace period, and nothing acknowledged is lost.
func TestSIGTERMDuringLoad(t *testing.T) {
	const grace = 10 * time.Second
	pg := testutil.StartPostgresCluster(t)
	srv := startServer(t, "DATABASE_URL="+pg.URL(), "SHUTDOWN_TIMEOUT=10s", "GRAPHQL_EXECUTION_TIMEOUT=8s")
	admin := pg.Open(t)
	if o := newClient(t, srv, "warm", true).create("warm"); !o.ok() {
		t.Fatalf("warm-up create: %+v", o)
	}

	// Writes wait for this lock; reads do not. The server runs at most four
	// create statements at once (postgres/group.go): four creates wait in the
	// database and two more in the server's queue behind them.
	tx, lockPID := lockTable(t, admin, "EXCLUSIVE")
	const blocked, inDatabase = 6, 4
	var wg sync.WaitGroup
	inFlight := make([]outcome, blocked)
	for i := range blocked {
		c := newClient(t, srv, fmt.Sprint("blocked-", i), false)
		wg.Go(func() { inFlight[i] = c.create(fmt.Sprint("in flight at SIGTERM ", i)) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for countBlocked(t, admin, lockPID) < inDatabase {
		if time.Now().After(deadline) {
			t.Fatalf("the creates never reached the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Without keep-alive, a request after the listener closed is refused
	// at connect and cannot be mistaken for an accepted one.
	reads := load(ctx, t, srv, 4, false, true)
	time.Sleep(500 * time.Millisecond)
	sigterm := time.Now()
	srv.signal(t, syscall.SIGTERM)
	time.Sleep(time.Second)
	tx.Rollback() // the blocked creates can now finish
	code := srv.exitCode(t, grace+5*time.Second)
	exited := time.Now()
	cancel()
	wg.Wait()
	all := reads()

	afterSignal := between(all, sigterm, exited)
	figure(t, "load: 4 workers listing (no keep-alive) plus %d creates blocked at SIGTERM (%d in the database, the rest queued behind them), released 1s later", blocked, inDatabase)
	figure(t, "before SIGTERM: %v", summarize(between(all, time.Time{}, sigterm)))
	figure(t, "after SIGTERM: %v", summarize(afterSignal))
	figure(t, "exit code %d, %v after SIGTERM (grace %v)", code, exited.Sub(sigterm).Round(time.Millisecond), grace)
	figure(t, "blocked creates: %v", summarize(inFlight))

	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if d := exited.Sub(sigterm); d > grace {
		t.Errorf("exited %v after SIGTERM, past the grace of %v", d, grace)
	}
	for i, o := range inFlight {
		if !o.ok() {
			t.Errorf("create %d, accepted before SIGTERM, did not complete: %+v", i, o)
		}
	}
	for _, o := range afterSignal {
		if !o.ok() && !o.refused() {
			t.Errorf("after SIGTERM a request failed other than by being refused: %+v", o)
			break
		}
	}
	acked := append(acknowledged(all), acknowledged(inFlight)...)
	gone := missing(t, admin, acked)
	figure(t, "creates acknowledged %d, found in the database %d", len(acked), len(acked)-len(gone))
	if len(gone) > 0 {
		t.Errorf("%d acknowledged creates are missing", len(gone))
	}
}

// countBlocked counts the sessions waiting for a lock held by pid.
func countBlocked(t *testing.T, db *sql.DB, pid int) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid).Scan(&n); err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return n
}

// TestSQLiteKillDuringWrites kills the server with SIGKILL while it writes
// to SQLite, three times, restarting it on the same file each time: every
// acknowledged create is there and PRAGMA integrity_check says ok.
func TestSQLiteKillDuringWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.db")
	url := "sqlite://" + path
	var acked []string
	var total summary
	for round := range 3 {
		srv := startServer(t, "DATABASE_URL="+url)
		ctx, cancel := context.WithCancel(context.Background())
		results := load(ctx, t, srv, 4, true, false)
		time.Sleep(1500 * time.Millisecond)
		srv.signal(t, syscall.SIGKILL)
		if code := srv.exitCode(t, 5*time.Second); code != -int(syscall.SIGKILL) {
			t.Fatalf("round %d: exit %d, want killed", round, code)
		}
		cancel()
		all := results()
		s := summarize(all)
		total.total, total.ok, total.failed = total.total+s.total, total.ok+s.ok, total.failed+s.failed
		acked = append(acked, acknowledged(all)...)
		figure(t, "round %d: 4 workers for 1.5s, then SIGKILL: %v", round, s)
	}

	// The server boots on the file again...
	srv := startServer(t, "DATABASE_URL="+url)
	if o := newClient(t, srv, "after", true).list(); !o.ok() {
		t.Errorf("after the kills, a list fails: %+v", o)
	}
	srv.signal(t, syscall.SIGTERM)
	if code := srv.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("clean shutdown exit %d", code)
	}
	// ...and holds everything acknowledged, intact.
	db, err := database.Open(context.Background(), database.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
	gone := missing(t, db.DB, acked)
	figure(t, "3 rounds: %d requests, %d ok; creates acknowledged %d, found %d; integrity_check %s",
		total.total, total.ok, len(acked), len(acked)-len(gone), check)
	if len(gone) > 0 {
		t.Errorf("%d acknowledged creates are missing: %v", len(gone), gone[:min(len(gone), 10)])
	}
}

// describeReadiness prints readiness changes relative to t0.
func describeReadiness(changes []readiness, t0 time.Time) string {
	s := ""
	for _, c := range changes {
		s += fmt.Sprintf("%d at %+.2fs, ", c.status, c.at.Sub(t0).Seconds())
	}
	return s
}

// sawReadiness reports whether readiness went through statuses in order
// after t0.
func sawReadiness(changes []readiness, t0 time.Time, statuses ...int) bool {
	i := 0
	for _, c := range changes {
		if c.at.Before(t0) || i == len(statuses) {
			continue
		}
		if c.status == statuses[i] {
			i++
		}
	}
	return i == len(statuses)
}

// lockTable locks the task table in mode from a session of the test's own,
// as another program would, and returns the open transaction (roll it
// back to release the lock) and the session's backend pid.
func lockTable(t *testing.T, admin *sql.DB, mode string) (*sql.Tx, int) {
	t.Helper()
	conn, err := admin.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tx, err := conn.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	var pid int
	if err := tx.QueryRow("SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("LOCK TABLE task IN " + mode + " MODE"); err != nil {
		t.Fatal(err)
	}
	return tx, pid
}
