//go:build faults

package faults

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to check what PostgreSQL holds

	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

// The harness of the fault scripts: a private PostgreSQL cluster, the real
// server binary, and a load generator, all on 127.0.0.1.

// secret is the HS256 secret the servers under test verify tokens with.
var secret = []byte("faults-hs256-secret-0123456789abcdef")

// server is the server binary running as a child process, with the
// fault scripts' ways of waiting for its end.
type server struct {
	*testutil.Process
}

// startServer runs the server binary with env (on top of a minimal
// environment) and waits until it serves /healthz.
func startServer(t *testing.T, env ...string) *server {
	t.Helper()
	return startServerBin(t, "", env...)
}

// startServerBin is startServer with the binary at bin, or the one built
// from this checkout when bin is "".
func startServerBin(t *testing.T, bin string, env ...string) *server {
	t.Helper()
	vars := map[string]string{
		"APP_ENV": "development", "AUTH_JWT_SECRET": string(secret),
		// The load is one client hammering the server: no rate limit.
		"COST_REFILL_PER_SECOND": "1000000000", "COST_BUDGET": "1000000000",
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	dir := t.TempDir()
	vars["HOME"] = dir
	p := testutil.StartServer(t, testutil.Options{Bin: bin, Dir: dir, Env: vars, Timeout: 30 * time.Second})
	return &server{Process: p}
}

// signal sends sig to the server.
func (s *server) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// exitCode waits up to d for the process to exit and returns its code.
func (s *server) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-s.Done():
	case <-time.After(d):
		t.Fatalf("the server did not exit within %v", d)
	}
	var exit *exec.ExitError
	if err := s.Err(); errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return exit.ExitCode()
	} else if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return 0
}

// client talks to a server under test as user.
type client struct {
	http  *http.Client
	base  string
	token string
}

func newClient(t *testing.T, s *server, user string, keepAlive bool) *client {
	t.Helper()
	tok, err := auth.Mint(secret, auth.MintClaims{Subject: user, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableKeepAlives: !keepAlive}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}, base: s.URL, token: tok}
}

// outcome is what one request got.
type outcome struct {
	start time.Time
	took  time.Duration
	// status is the HTTP status, or 0 when no answer came.
	status int
	// code is the first error code of the answer, "" for none.
	code string
	// transport is the client-side error when no answer came.
	transport error
	// id is the id of the task a createTask acknowledged.
	id    string
	write bool
}

// ok reports whether the request was answered with data and no error.
func (o outcome) ok() bool { return o.status == http.StatusOK && o.code == "" }

// refused reports whether the request never reached the server: the
// connection was refused or reset before an answer.
func (o outcome) refused() bool {
	return o.transport != nil && (errors.Is(o.transport, syscall.ECONNREFUSED) || errors.Is(o.transport, syscall.ECONNRESET) || errors.Is(o.transport, io.EOF))
}

// do posts a GraphQL document.
func (c *client) do(query string, vars map[string]any) outcome {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, c.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	o := outcome{start: time.Now()}
	res, err := c.http.Do(req)
	if err != nil {
		o.took, o.transport = time.Since(o.start), err
		return o
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	o.took, o.status = time.Since(o.start), res.StatusCode
	if err != nil {
		o.transport = err
		return o
	}
	var resp struct {
		Data struct {
			CreateTask *struct{ ID string }
		}
		Errors []struct {
			Extensions struct{ Code string }
		}
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		o.code = "NOT_JSON"
		return o
	}
	if len(resp.Errors) > 0 {
		o.code = resp.Errors[0].Extensions.Code
		if o.code == "" {
			o.code = "NO_CODE"
		}
	}
	if resp.Data.CreateTask != nil && o.code == "" {
		o.id = resp.Data.CreateTask.ID
	}
	return o
}

func (c *client) create(title string) outcome {
	o := c.do(`mutation($t: String!) { createTask(input: {title: $t}) { id } }`, map[string]any{"t": title})
	o.write = true
	return o
}

func (c *client) list() outcome {
	return c.do(`{ tasks(first: 20) { nodes { id title } pageInfo { hasNextPage } totalCount } taskStats { total } }`, nil)
}

// load runs workers clients until ctx ends, each alternating a create and a
// list (only listing when readOnly), and returns every outcome.
func load(ctx context.Context, t *testing.T, s *server, workers int, keepAlive, readOnly bool) func() []outcome {
	t.Helper()
	var mu sync.Mutex
	var all []outcome
	var wg sync.WaitGroup
	for w := range workers {
		c := newClient(t, s, fmt.Sprintf("load-%d", w), keepAlive)
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				var o outcome
				if i%2 == 0 && !readOnly {
					o = c.create(fmt.Sprintf("w%d-%d", w, i))
				} else {
					o = c.list()
				}
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
				if !o.ok() {
					// A failing server is not hammered in a tight loop.
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	return func() []outcome {
		wg.Wait()
		return all
	}
}

// probe polls /readyz every 50ms until ctx ends and returns the changes of
// its status, with their times.
type readiness struct {
	at     time.Time
	status int
}

func probeReady(ctx context.Context, s *server) func() []readiness {
	var changes []readiness
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 5 * time.Second}
		last := -1
		for ctx.Err() == nil {
			status := 0
			if res, err := c.Get(s.URL + "/readyz"); err == nil {
				status = res.StatusCode
				res.Body.Close()
			}
			if status != last {
				changes = append(changes, readiness{time.Now(), status})
				last = status
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() []readiness { <-done; return changes }
}

// summary is the figures of a set of outcomes.
type summary struct {
	total, ok, failed int
	// failedMax and failedP50 are how long the failed requests took.
	failedMax, failedP50 time.Duration
	codes                map[string]int
}

func summarize(os []outcome) summary {
	s := summary{total: len(os), codes: map[string]int{}}
	var failed []time.Duration
	for _, o := range os {
		if o.ok() {
			s.ok++
			continue
		}
		s.failed++
		failed = append(failed, o.took)
		switch {
		case o.transport != nil:
			s.codes["transport: "+o.transport.Error()[max(0, len(o.transport.Error())-40):]]++
		default:
			s.codes[fmt.Sprintf("%d %s", o.status, o.code)]++
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		s.failedMax, s.failedP50 = failed[len(failed)-1], failed[len(failed)/2]
	}
	return s
}

func (s summary) String() string {
	return fmt.Sprintf("%d requests: %d ok, %d failed (failed ones took p50 %v, max %v; %v)",
		s.total, s.ok, s.failed, s.failedP50.Round(time.Millisecond), s.failedMax.Round(time.Millisecond), s.codes)
}

// between returns the outcomes that started in [from, to).
func between(os []outcome, from, to time.Time) []outcome {
	var in []outcome
	for _, o := range os {
		if !o.start.Before(from) && o.start.Before(to) {
			in = append(in, o)
		}
	}
	return in
}

// acknowledged returns the ids of the tasks whose creation was acknowledged.
func acknowledged(os []outcome) []string {
	var ids []string
	for _, o := range os {
		if o.id != "" {
			ids = append(ids, o.id)
		}
	}
	return ids
}

// missing returns the ids in want that are not among the task table's ids.
func missing(t *testing.T, db *sql.DB, want []string) []string {
	t.Helper()
	rows, err := db.Query("SELECT id FROM task")
	if err != nil {
		t.Fatalf("read task ids: %v", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[strconv.FormatInt(id, 10)] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, id := range want {
		if !have[id] {
			gone = append(gone, id)
		}
	}
	return gone
}

// figure logs one line of the figures the closing note reports.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE %s: "+format, append([]any{t.Name()}, args...)...)
}
