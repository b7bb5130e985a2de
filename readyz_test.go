package main

import (
	"database/sql"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

// TestReadyzAnswersFromTheLastStateSeen serves on PostgreSQL and reads
// pg_stat_activity for the server's own sessions: probes of an idle,
// healthy server send the database nothing; after a request's statement
// fails, /readyz is 503 (still without a statement of its own within the
// probe interval) until a request succeeds.
func TestReadyzAnswersFromTheLastStateSeen(t *testing.T) {
	t.Parallel()
	dbURL, appName := testutil.WithApplicationName(t, testutil.URL(t, testutil.Postgres), "readyz")
	vars := withSecret(map[string]string{
		"DATABASE_URL":     dbURL,
		"LISTEN_ADDR":      "127.0.0.1:0",
		"SHUTDOWN_TIMEOUT": "5s",
	})
	srv := startServe(t, vars)
	t.Cleanup(func() { srv.cancel(); <-srv.done })
	base := srv.url(t)
	client := &http.Client{Timeout: 10 * time.Second}
	token, err := auth.Mint([]byte(testSecret), auth.MintClaims{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	query := func() (ok bool) {
		req, _ := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(`{"query":"{ tasks { totalCount } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST /graphql: %v", err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode == http.StatusOK && !strings.Contains(string(body), `"errors"`)
	}
	probe := func(n int) (statuses map[int]int, statements int) {
		before := testutil.Backends(t, appName)
		statuses = map[int]int{}
		for range n {
			res, err := client.Get(base + "/readyz")
			if err != nil {
				t.Fatalf("GET /readyz: %v", err)
			}
			res.Body.Close()
			statuses[res.StatusCode]++
		}
		return statuses, testutil.StatementsSince(before, testutil.Backends(t, appName))
	}
	if !query() {
		t.Fatal("a query failed on a healthy database")
	}

	const probes = 50
	statuses, statements := probe(probes)
	t.Logf("healthy and idle: %d probes answered %v, and %d of its sessions sent a statement", probes, statuses, statements)
	if statuses[http.StatusOK] != probes || statements != 0 {
		t.Errorf("healthy and idle: %d probes answered %v and %d sessions sent a statement, want all 200 and none", probes, statuses, statements)
	}

	// Break the server's database work, as a lost table would, without
	// stopping the database the other tests share.
	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`ALTER TABLE task RENAME TO task_away`); err != nil {
		t.Fatal(err)
	}
	if query() {
		t.Fatal("a query succeeded without its table")
	}
	statuses, statements = probe(probes)
	t.Logf("after a failed request: %d probes answered %v, and %d of its sessions sent a statement", probes, statuses, statements)
	if statuses[http.StatusServiceUnavailable] != probes || statements != 0 {
		t.Errorf("after a failed request: %d probes answered %v and %d sessions sent a statement, want all 503 and none within the probe interval",
			probes, statuses, statements)
	}

	if _, err := admin.Exec(`ALTER TABLE task_away RENAME TO task`); err != nil {
		t.Fatal(err)
	}
	if !query() {
		t.Fatal("a query failed once its table was back")
	}
	if statuses, _ = probe(1); statuses[http.StatusOK] != 1 {
		t.Errorf("after a request succeeded again: /readyz answered %v, want 200", statuses)
	}
}
