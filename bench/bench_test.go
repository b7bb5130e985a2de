package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuantileIsNearestRank(t *testing.T) {
	m := &measurement{}
	for i := 1; i <= 100; i++ {
		m.Latencies = append(m.Latencies, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, tt := range tests {
		if got := m.quantile(tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := (&measurement{}).quantile(0.5); got != 0 {
		t.Errorf("quantile of nothing = %v, want 0", got)
	}
}

func TestRequestBodiesAreValidJSON(t *testing.T) {
	tx := newTexts(7)
	bodies := map[string][]byte{
		"list":   queryBody(docList),
		"create": createBody(nil, tx),
		"after":  afterBody(`eyJmIjoiYyJ9"\` + "\n"),
	}
	for range 200 {
		bodies["create"] = createBody(bodies["create"][:0], tx)
		var v struct {
			Query     string         `json:"query"`
			Variables map[string]any `json:"variables"`
		}
		if err := json.Unmarshal(bodies["create"], &v); err != nil || v.Query != docCreate {
			t.Fatalf("create body %s: %v", bodies["create"], err)
		}
	}
	for name, b := range bodies {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("%s body %s is not JSON: %v", name, b, err)
		}
	}
}

func TestSeedRowsAreRealistic(t *testing.T) {
	now := time.Now()
	rows := seedRows(newTexts(1), 0, 10, 200, now)
	if len(rows) != 2000 {
		t.Fatalf("%d rows, want 2000", len(rows))
	}
	completed, described := 0, 0
	for i, r := range rows {
		if r.title == "" || len(r.title) > 200 || r.createdAt.After(now) || r.updatedAt.Before(r.createdAt) {
			t.Fatalf("row %d is not a valid task: %+v", i, r)
		}
		if i > 0 && rows[i-1].userID == r.userID && !r.createdAt.After(rows[i-1].createdAt) {
			t.Fatalf("row %d: a user's tasks are not created in order", i)
		}
		if r.completed {
			completed++
		}
		if r.description != nil {
			described++
		}
	}
	if completed < 900 || completed > 1100 {
		t.Errorf("%d of 2000 completed, want about half", completed)
	}
	if described < 1300 || described > 1700 {
		t.Errorf("%d of 2000 with a description, want about three quarters", described)
	}
	if got := userID(42); len(got) != 32 || !strings.HasSuffix(got, "42") {
		t.Errorf("userID(42) = %q, want 32 characters ending in 42", got)
	}
}

func TestReadPgbenchLogKeepsTransactionsStartedInTheWindow(t *testing.T) {
	from := time.Unix(1000, 0)
	// client tx latency_us script end_s end_us
	log := strings.Join([]string{
		"0 1 500 0 999 999000",     // ended before the window
		"0 2 2000 0 1000 1000",     // started 1 ms before the window
		"1 1 1500 0 1000 600000",   // inside
		"1 2 2500 0 1001 0",        // inside
		"1 3 failed 0 1001 100000", // a failure
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "log.1")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &measurement{}
	if err := readPgbenchLog(path, from, m); err != nil {
		t.Fatal(err)
	}
	if m.Requests != 2 || m.Errors != 1 {
		t.Fatalf("requests %d, errors %d; want 2 and 1", m.Requests, m.Errors)
	}
	if m.Latencies[0] != 1500*time.Microsecond || m.Latencies[1] != 2500*time.Microsecond {
		t.Fatalf("latencies %v", m.Latencies)
	}
}

func TestLibpqURLDropsSearchPath(t *testing.T) {
	got := libpqURL("postgres://u@h:5432/db?search_path=taskbench&sslmode=disable")
	if strings.Contains(got, "search_path") || !strings.Contains(got, "sslmode=disable") {
		t.Fatalf("libpqURL = %q", got)
	}
}

func TestEvaluateMarksTargets(t *testing.T) {
	r := &Report{
		Results: []Result{
			{Scenario: "R", System: "pgbench", DB: "postgres", Conns: 32, RPS: 10000},
			{Scenario: "R", System: "postgraphile", DB: "postgres", Conns: 32, RPS: 1000},
			{Scenario: "R", System: "server", DB: "postgres", Conns: 32, RPS: 7000, P99Ms: 9},
			{Scenario: "W", System: "pgbench", DB: "postgres", Conns: 32, RPS: 20000},
			{Scenario: "W", System: "server", DB: "postgres", Conns: 32, RPS: 5500, P99Ms: 20, Errors: 1, PGSessions: 2, PGOwnNew: 2},
		},
		Memory: []Memory{{DB: "postgres", IdleBootMB: 20, IdleAfterMB: 25, PeakMB: 61}},
	}
	r.ratios()
	r.evaluate()
	met := map[string]bool{}
	measured := map[string]bool{}
	for _, tg := range r.Targets {
		met[tg.Name] = tg.Met
		measured[tg.Name] = !tg.NotMeasured
	}
	want := map[string]bool{
		"R vs pgbench (server req/s ÷ pgbench req/s)":           true,
		"R vs PostGraphile (server req/s ÷ PostGraphile req/s)": true,  // 7×
		"W vs pgbench (server req/s ÷ pgbench req/s)":           false, // 0.275
		"R p99 (server)":                             true,
		"W p99 (server)":                             false,
		"errors (whole run, every system)":           false,
		"server's new PG connections in its windows": false,
		"server peak RSS under load (PostgreSQL)":    false,
		"R req/s (PostgreSQL, c=32)":                 true,
		"W req/s (PostgreSQL, c=32)":                 true,
		"server RSS idle":                            true,
	}
	for name, w := range want {
		got, ok := met[name]
		if !ok || got != w || !measured[name] {
			t.Errorf("target %q: met = %v (present %v, measured %v), want %v", name, got, ok, measured[name], w)
		}
	}
	if m, ok := measured["100000-task user vs 100-task user, first page"]; ok && m {
		t.Errorf("the list-growth target is measured without probes")
	}
	if x := r.find("R", "server", "postgres", 32); x.VsPostGraphile != 7 || x.VsPgbench != 0.7 {
		t.Errorf("R ratios: × PostGraphile %v, × pgbench %v; want 7, 0.7", x.VsPostGraphile, x.VsPgbench)
	}
}

func TestServerCPUPerRequest(t *testing.T) {
	m := &measurement{Requests: 2000, Elapsed: 2 * time.Second, CPU: cpuShares{Server: 50}}
	if got := newResult("R", "server", "postgres", 32, m).ServerCPUPerReqUs; got != 500 {
		t.Errorf("server: %v µs/req, want 500 (1 s of CPU over 2,000 requests)", got)
	}
	if got := newResult("R", "postgraphile", "postgres", 32, m).ServerCPUPerReqUs; got != 500 {
		t.Errorf("postgraphile: %v µs/req, want 500", got)
	}
	if got := newResult("R", "pgx", "postgres", 32, m).ServerCPUPerReqUs; got != 0 {
		t.Errorf("pgx: %v µs/req, want 0 (no server process)", got)
	}
}

func TestPostGraphileBodiesAreValidJSON(t *testing.T) {
	tx := newTexts(3)
	for range 50 {
		var v struct {
			Query     string `json:"query"`
			Variables struct {
				Task map[string]any `json:"task"`
			} `json:"variables"`
		}
		b := pglCreateBody(nil, tx)
		if err := json.Unmarshal(b, &v); err != nil || v.Query != pglDocCreate || v.Variables.Task["title"] == nil {
			t.Fatalf("create body %s: %v", b, err)
		}
		if _, ok := v.Variables.Task["userId"]; ok {
			t.Fatalf("create body %s names the user: the token must", b)
		}
	}
	u, err := pglURL("postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=taskbench")
	if err != nil || !strings.HasPrefix(u, "postgres://"+pglRole+"@127.0.0.1:5432/test?") || strings.Contains(u, "search_path") {
		t.Errorf("pglURL = %q, %v", u, err)
	}
}
