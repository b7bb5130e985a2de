//go:build faults

package faults

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/testutil"
)

// dbActivity is what a database has seen, from pg_stat_database and
// pg_stat_activity, read from another database of the cluster so that the
// reading itself is not counted.
type dbActivity struct {
	// transactions is every transaction the database has run: each
	// statement outside a transaction is one, a ping too.
	transactions int64
	// sessions is how many sessions were ever opened to it, and open how
	// many are open now.
	sessions, open int64
}

func readActivity(t *testing.T, admin *sql.DB, name string) dbActivity {
	t.Helper()
	// pg_stat_database is flushed by each backend at most once a second:
	// wait for it, and read past this session's snapshot cache.
	time.Sleep(1500 * time.Millisecond)
	if _, err := admin.Exec(`SELECT pg_stat_clear_snapshot()`); err != nil {
		t.Fatal(err)
	}
	var a dbActivity
	if err := admin.QueryRow(`SELECT xact_commit + xact_rollback, sessions,
		(SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend')
		FROM pg_stat_database WHERE datname = $1`, name).Scan(&a.transactions, &a.sessions, &a.open); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestIdleServerSendsTheDatabaseNothing runs a production server as an
// operator would on Neon, with the pool's idle time shortened so the test
// need not wait five minutes: after one burst of requests and the idle
// time, a minute of /readyz probes every 3 s reaches the database not at
// all (no statement, no session), which is what lets a serverless compute
// suspend; when every backend is then terminated (what a suspend does),
// nothing reconnects for 20 s, and the next request succeeds.
//
// FAULTS_SERVER_BIN runs another build instead, to measure it the same way.
func TestIdleServerSendsTheDatabaseNothing(t *testing.T) {
	pg := testutil.StartPostgresCluster(t)
	admin := pg.Open(t)
	// Autovacuum's workers run transactions in every database each
	// minute: leave only the server's to count.
	for _, stmt := range []string{`CREATE DATABASE tasks`, `ALTER SYSTEM SET autovacuum = off`, `SELECT pg_reload_conf()`} {
		if _, err := admin.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	url := strings.Replace(pg.URL(), "/postgres?", "/tasks?", 1)
	const idleTime = 5 * time.Second
	srv := startServerBin(t, os.Getenv("FAULTS_SERVER_BIN"), "APP_ENV=production", "DATABASE_URL="+url,
		fmt.Sprintf("DB_CONN_MAX_IDLE_TIME=%ds", int(idleTime.Seconds())))
	c := newClient(t, srv, "idle-user", true)
	for i := range 20 {
		if o := c.create(fmt.Sprint("task ", i)); !o.ok() {
			t.Fatalf("create: %+v", o)
		}
		if o := c.list(); !o.ok() {
			t.Fatalf("list: %+v", o)
		}
	}
	c.http.CloseIdleConnections()
	// The pool's idle time, and the events bus's linger after the LISTEN
	// it opens at boot (10 s), go by.
	time.Sleep(max(idleTime, 10*time.Second) + 2*time.Second)

	probe := func(d time.Duration) (probes, unready int) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(3 * time.Second) {
			res, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			probes++
			if res.StatusCode != http.StatusOK {
				unready++
			}
		}
		return probes, unready
	}
	before := readActivity(t, admin, "tasks")
	probes, unready := probe(time.Minute)
	after := readActivity(t, admin, "tasks")
	figure(t, "idle minute: %d /readyz probes (%d not ready); the database ran %d transactions and opened %d sessions; %d sessions open at the end (%d at the start)",
		probes, unready, after.transactions-before.transactions, after.sessions-before.sessions, after.open, before.open)
	if unready != 0 {
		t.Errorf("%d of %d probes were not ready", unready, probes)
	}
	if n := after.transactions - before.transactions; n != 0 {
		t.Errorf("an idle server made the database run %d transactions in a minute", n)
	}
	if after.open != 0 || after.sessions != before.sessions {
		t.Errorf("an idle server holds %d sessions and opened %d", after.open, after.sessions-before.sessions)
	}

	// A suspend: every session ends. Here the server holds none; end them
	// anyway, as a restarting compute would, and watch for reconnects.
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'tasks'`); err != nil {
		t.Fatal(err)
	}
	before = readActivity(t, admin, "tasks")
	probe(20 * time.Second)
	after = readActivity(t, admin, "tasks")
	figure(t, "20 s after every backend was terminated: %d sessions opened, %d transactions", after.sessions-before.sessions, after.transactions-before.transactions)
	if after.sessions != before.sessions {
		t.Errorf("the server reconnected %d times with no client", after.sessions-before.sessions)
	}
	start := time.Now()
	if o := c.list(); !o.ok() {
		t.Fatalf("the first request after the idle time failed: %+v", o)
	}
	figure(t, "the first request after it (a cold pool) took %v", time.Since(start).Round(time.Millisecond))
}
