package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostGraphile v5 is the third baseline: a GraphQL server generated from
// the same table, one Node process, with the per-user scoping PostGraphile
// users give it (bench/README.md, "PostGraphile"). Its files are in
// bench/postgraphile; `npm ci` there installs it.

// pglRole is the role PostGraphile connects as: not a superuser and not
// the table's owner, so the table's row level security applies to it and
// to nothing else the benchmark runs (the server, pgx and pgbench connect
// as the owner, which RLS without FORCE does not restrict).
const pglRole = "taskbench_user"

// The documents the load generator sends to PostGraphile: the same work
// as docList and docCreate in the names PostGraphile's schema gives it.
// The order is the server's default (created_at DESC, id DESC), which the
// index ix_task_user_created serves; rowId is the task's id (PostGraphile
// keeps id for its global node id).
const (
	pglTaskFields = `rowId title description completed createdAt updatedAt`
	pglDocList    = `query Tasks { allTasks(first: 20, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { ` + pglTaskFields + ` } } }`
	pglDocCreate  = `mutation Create($task: TaskInput!) { createTask(input: {task: $task}) { task { ` + pglTaskFields + ` } } }`

	// A page must hold at least one task: an unscoped or wrongly scoped
	// request (no claims set) would answer an empty list.
	pglListPrefix   = `{"data":{"allTasks":{"nodes":[{"rowId":`
	pglCreatePrefix = `{"data":{"createTask":{"task":{"rowId":`
)

// pglCreateBody is a createTask request of PostGraphile with a fresh title
// and description; the user is the token's, set by the column's default.
func pglCreateBody(b []byte, t *texts) []byte {
	b = append(b, `{"query":`...)
	b = appendJSONString(b, pglDocCreate)
	b = append(b, `,"variables":{"task":{"title":`...)
	b = appendJSONString(b, t.title())
	if d := t.description(); d != nil {
		b = append(b, `,"description":`...)
		b = appendJSONString(b, *d)
	}
	return append(b, `}}}`...)
}

// pglRead and pglWrite are R and W against PostGraphile, over random users.
func (t *httpTarget) pglRead() func(int) (op, func(), error) {
	return t.reads(pglDocList, pglListPrefix)
}

func (t *httpTarget) pglWrite() func(int) (op, func(), error) {
	return t.writes(pglCreateBody, pglCreatePrefix)
}

// pglDir is where PostGraphile's package is; pglInstalled says whether
// `npm ci` has run there.
func pglDir(root string) string { return filepath.Join(root, "bench", "postgraphile") }

func pglInstalled(root string) bool {
	_, err := os.Stat(filepath.Join(pglDir(root), "node_modules", "postgraphile", "package.json"))
	return err == nil
}

// setupPostGraphile makes the seeded schema ready for PostGraphile, as a
// PostGraphile deployment would have it: a role of its own with the
// privileges the two scenarios need, the owner's id defaulting to the
// verified subject (so a client cannot choose whose task it creates; the
// smart comment keeps user_id out of the create input), and row level
// security with a policy for that role only.
func setupPostGraphile(ctx context.Context, base, schema string) error {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	s := pgx.Identifier{schema}.Sanitize()
	role := pgx.Identifier{pglRole}.Sanitize()
	sub := `current_setting('jwt.claims.sub', true)`
	// Roles belong to the cluster, not the schema: made once, kept. Two
	// runs creating it at once: the loser's duplicate is fine.
	_, err = conn.Exec(ctx, `DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '`+pglRole+`') THEN
			CREATE ROLE `+role+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
		END IF;
	EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
	END $$`)
	if err != nil {
		return fmt.Errorf("create role %s: %w", pglRole, err)
	}
	for _, stmt := range []string{
		`GRANT USAGE ON SCHEMA ` + s + ` TO ` + role,
		`GRANT SELECT, INSERT ON ` + s + `.task TO ` + role,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA ` + s + ` TO ` + role,
		`ALTER TABLE ` + s + `.task ALTER COLUMN user_id SET DEFAULT ` + sub,
		`COMMENT ON COLUMN ` + s + `.task.user_id IS E'@behavior -insert -update'`,
		// ENABLE, not FORCE: the owner (the server, pgx, pgbench) is not
		// subject to the policies.
		`ALTER TABLE ` + s + `.task ENABLE ROW LEVEL SECURITY`,
		`DROP POLICY IF EXISTS task_owner ON ` + s + `.task`,
		`CREATE POLICY task_owner ON ` + s + `.task TO ` + role + ` USING (user_id = ` + sub + `) WITH CHECK (user_id = ` + sub + `)`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("set up PostGraphile: %s: %w", stmt, err)
		}
	}
	return nil
}

// pglURL is base as the PostGraphile role (the benchmark's PostgreSQL
// trusts local connections, as the tests' does), without our search_path:
// PostGraphile names the schema in every query.
func pglURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("PostgreSQL URL: %w", err)
	}
	u.User = url.User(pglRole)
	q := u.Query()
	q.Del("search_path")
	q.Set("application_name", appPostGraphile)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pglProcess is PostGraphile running.
type pglProcess struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan struct{}
}

func (p *pglProcess) pid() int { return p.cmd.Process.Pid }

// startPostGraphile runs PostGraphile (bench/postgraphile/server.mjs) in
// production mode on a free loopback port over schema, and waits until
// it answers R for the user of token.
func startPostGraphile(ctx context.Context, root, dir, base, schema, secret, token, uid string) (*pglProcess, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dbURL, err := pglURL(base)
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	p := &pglProcess{addr: addr, log: filepath.Join(dir, fmt.Sprintf("postgraphile-%d.log", time.Now().UnixNano())), done: make(chan struct{})}
	logFile, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command("node", "server.mjs")
	p.cmd.Dir = pglDir(root)
	p.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"NODE_ENV=production",
		"DATABASE_URL=" + dbURL, "SCHEMA=" + schema, "AUTH_JWT_SECRET=" + secret, "PORT=" + port,
	}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start PostGraphile: %w", err)
	}
	go func() {
		p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	target := &httpTarget{addr: addr}
	body := queryBody(pglDocList)
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := target.post(token, body)
		if err == nil && strings.HasPrefix(string(resp), pglListPrefix) {
			if err := checkPostGraphileScoping(target, token, uid); err != nil {
				p.stop()
				return nil, err
			}
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("PostGraphile exited before it was ready; its log:\n%s", tail(p.log))
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("PostGraphile not ready in 90s (last: %v); its log:\n%s", err, tail(p.log))
		}
	}
}

// checkPostGraphileScoping makes sure that the scoping is real before
// anything is measured: a request without a valid token is refused, and
// the user of token sees its own tasks and no one else's.
func checkPostGraphileScoping(target *httpTarget, token, uid string) error {
	if resp, err := target.post("not-a-token", queryBody(pglDocList)); err == nil {
		return fmt.Errorf("PostGraphile answered a request with an invalid token: %s", resp)
	}
	resp, err := target.post(token, queryBody(`{ allTasks(first: 1000) { nodes { userId } } }`))
	if err != nil {
		return fmt.Errorf("PostGraphile scoping check: %w", err)
	}
	var page struct {
		Data struct {
			AllTasks struct {
				Nodes []struct {
					UserID string `json:"userId"`
				} `json:"nodes"`
			} `json:"allTasks"`
		} `json:"data"`
	}
	if err := json.Unmarshal(resp, &page); err != nil {
		return fmt.Errorf("PostGraphile scoping check: %w", err)
	}
	nodes := page.Data.AllTasks.Nodes
	if len(nodes) == 0 {
		return errors.New("PostGraphile scoping check: the user sees no task")
	}
	for _, n := range nodes {
		if n.UserID != uid {
			return fmt.Errorf("PostGraphile scoping check: user %s sees a task of %s: row level security does not apply", uid, n.UserID)
		}
	}
	return nil
}

// stop asks PostGraphile to exit and waits, killing it after 10 s.
func (p *pglProcess) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("PostGraphile did not stop in 10s: killed")
	}
}

// pglRun measures one scenario against PostGraphile; its node process is
// the "server" of the row's CPU and memory columns.
func (b *bench) pglRun(ctx context.Context, p *pglProcess, name string, c int, newOp func(int) (op, func(), error)) error {
	b.logf("%s postgres postgraphile c=%d", name, c)
	m, err := drive(ctx, c, b.opt.warmup, b.opt.duration, watch{serverPID: p.pid(), sessions: b.sessions, own: b.ownConns(appPostGraphile)}, newOp)
	if err != nil {
		return err
	}
	b.report.Results = append(b.report.Results, newResult(name, "postgraphile", "postgres", c, m))
	return nil
}
