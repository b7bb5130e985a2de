package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The SQL the server sends for each scenario, as Bun writes it, with
// placeholders where Bun inlines the values: the baselines run exactly
// this, prepared, which is the most the database can do for the server.
const (
	sqlColumns = `"task"."id", "task"."user_id", "task"."title", "task"."description", "task"."completed", "task"."created_at", "task"."updated_at"`
	sqlList    = `SELECT ` + sqlColumns + ` FROM "task" AS "task" WHERE (user_id = $1) ORDER BY "created_at" DESC, id DESC LIMIT 21`
	sqlAfter   = `SELECT ` + sqlColumns + ` FROM "task" AS "task" WHERE (user_id = $1) AND (("created_at", id) < ($2, $3)) ORDER BY "created_at" DESC, id DESC LIMIT 21`
	sqlInsert  = `INSERT INTO "task" AS "task" ("user_id", "title", "description", "completed") VALUES ($1, $2, $3, $4) RETURNING *`
	sqlCount   = `SELECT count(*) FROM "task" AS "task" WHERE (user_id = $1)`
)

// rawTarget runs the server's SQL straight through pgx, with as many
// pooled connections as the load has workers.
type rawTarget struct {
	url   string
	users int
	// sessions counts PostgreSQL's accepted connections, and own the
	// pool's connections opened during a window, when set.
	sessions func() int64
	own      func() func() int64
}

// keyset is the position of a task in the default order, what a cursor
// holds.
type keyset struct {
	createdAt time.Time
	id        int64
}

func (t *rawTarget) pool(ctx context.Context, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(t.url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = int32(conns), int32(conns)
	cfg.ConnConfig.RuntimeParams["application_name"] = appPgx
	// The default exec mode prepares each statement once per connection
	// and caches it.
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect pgx pool: %w", err)
	}
	return p, nil
}

// scanTasks reads a page as the server would, every column of every row.
func scanTasks(rows pgx.Rows) error {
	var (
		id                   int64
		uid, title           string
		desc                 *string
		completed            bool
		createdAt, updatedAt time.Time
	)
	n := 0
	for rows.Next() {
		if err := rows.Scan(&id, &uid, &title, &desc, &completed, &createdAt, &updatedAt); err != nil {
			rows.Close()
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no rows")
	}
	return nil
}

// run drives conns workers doing query on one pool.
func (t *rawTarget) run(ctx context.Context, conns int, warmup, duration time.Duration, query func(ctx context.Context, p *pgxpool.Pool, r *rand.Rand, tx *texts) error) (*measurement, error) {
	p, err := t.pool(ctx, conns)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return drive(ctx, conns, warmup, duration, watch{sessions: t.sessions, own: t.own}, func(i int) (op, func(), error) {
		tx := newTexts(uint64(i) + uint64(time.Now().UnixNano()))
		return func(ctx context.Context, r *rand.Rand) error { return query(ctx, p, r, tx) }, nil, nil
	})
}

func rawRead(ctx context.Context, p *pgxpool.Pool, uid string) error {
	rows, err := p.Query(ctx, sqlList, uid)
	if err != nil {
		return err
	}
	return scanTasks(rows)
}

func rawWrite(ctx context.Context, p *pgxpool.Pool, uid string, tx *texts) error {
	rows, err := p.Query(ctx, sqlInsert, uid, tx.title(), tx.description(), false)
	if err != nil {
		return err
	}
	return scanTasks(rows)
}

func (t *rawTarget) read(ctx context.Context, conns int, warmup, duration time.Duration) (*measurement, error) {
	return t.run(ctx, conns, warmup, duration, func(ctx context.Context, p *pgxpool.Pool, r *rand.Rand, _ *texts) error {
		return rawRead(ctx, p, userID(r.IntN(t.users)))
	})
}

func (t *rawTarget) write(ctx context.Context, conns int, warmup, duration time.Duration) (*measurement, error) {
	return t.run(ctx, conns, warmup, duration, func(ctx context.Context, p *pgxpool.Pool, r *rand.Rand, tx *texts) error {
		return rawWrite(ctx, p, userID(r.IntN(t.users)), tx)
	})
}

func (t *rawTarget) mixed(ctx context.Context, conns int, warmup, duration time.Duration) (*measurement, error) {
	return t.run(ctx, conns, warmup, duration, func(ctx context.Context, p *pgxpool.Pool, r *rand.Rand, tx *texts) error {
		uid := userID(r.IntN(t.users))
		if r.IntN(10) == 0 {
			return rawWrite(ctx, p, uid, tx)
		}
		return rawRead(ctx, p, uid)
	})
}

func (t *rawTarget) deep(ctx context.Context, conns int, warmup, duration time.Duration, uid string, keys []keyset) (*measurement, error) {
	return t.run(ctx, conns, warmup, duration, func(ctx context.Context, p *pgxpool.Pool, r *rand.Rand, _ *texts) error {
		k := keys[r.IntN(len(keys))]
		rows, err := p.Query(ctx, sqlAfter, uid, k.createdAt, k.id)
		if err != nil {
			return err
		}
		return scanTasks(rows)
	})
}

// probe runs one query in a loop on one connection (latency probes).
func (t *rawTarget) probe(ctx context.Context, warmup, duration time.Duration, query func(ctx context.Context, p *pgxpool.Pool) error) (*measurement, error) {
	return t.run(ctx, 1, warmup, duration, func(ctx context.Context, p *pgxpool.Pool, _ *rand.Rand, _ *texts) error {
		return query(ctx, p)
	})
}

func rawCount(ctx context.Context, p *pgxpool.Pool, uid string) error {
	var n int64
	return p.QueryRow(ctx, sqlCount, uid).Scan(&n)
}

// pgbench runs PostgreSQL's own load generator on the same SQL, when it is
// installed: the database's limit measured without any Go in the way.
type pgbench struct {
	sessions func() int64
	own      func() func() int64
	bin      string
	dbURL    string // libpq URI, without our search_path
	schema   string
	users    int
	dir      string
}

func findPgbench() string {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(matches) > 0 {
		return matches[len(matches)-1]
	}
	return ""
}

// libpqURL drops from rawURL what libpq does not understand.
func libpqURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String()
}

// pgbench's scripts: the uid expression builds userID(n) in SQL.
const (
	pgbenchUID    = `'bench' || lpad(:n::text, 27, '0')`
	pgbenchRead   = "\\set n random(0, %d)\n" + `SELECT ` + sqlColumns + ` FROM "task" AS "task" WHERE (user_id = ` + pgbenchUID + `) ORDER BY "created_at" DESC, id DESC LIMIT 21;` + "\n"
	pgbenchInsert = "\\set n random(0, %d)\n" + `INSERT INTO "task" AS "task" ("user_id", "title", "description", "completed") VALUES (` + pgbenchUID + `, 'Renew the car insurance before Friday', 'Compare at least three quotes before deciding. Attach the signed form and keep a copy.', false) RETURNING *;` + "\n"
)

// run runs script (a format taking the highest user number) with conns
// clients for warmup+duration, and measures the transactions that started
// after the warm-up, from pgbench's per-transaction log.
func (b *pgbench) run(ctx context.Context, name, script string, conns int, warmup, duration time.Duration) (*measurement, error) {
	dir, err := os.MkdirTemp(b.dir, "pgbench-"+name+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	scriptPath := filepath.Join(dir, name+".sql")
	if err := os.WriteFile(scriptPath, fmt.Appendf(nil, script, b.users-1), 0o644); err != nil {
		return nil, err
	}
	total := warmup + duration
	secs := int(total.Round(time.Second) / time.Second)
	secs = max(secs, 1)
	threads := min(conns, 2)
	cmd := exec.CommandContext(ctx, b.bin, "-n", "-M", "prepared", "-c", strconv.Itoa(conns), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(secs), "-f", scriptPath, "-l", "--log-prefix", filepath.Join(dir, "log"), b.dbURL)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+b.schema, "PGAPPNAME="+appPgbench)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	startAt := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgbench: %w", err)
	}
	measureFrom := startAt.Add(time.Duration(secs)*time.Second - duration)
	sleep(ctx, time.Until(measureFrom))
	// The window closes a little before pgbench ends: its connections'
	// server processes, whose CPU is the database's share, exit with it.
	win := startWindow(watch{sessions: b.sessions, own: b.own})
	ownStart, _ := procCPU(cmd.Process.Pid)
	sleep(ctx, duration*9/10)
	ownEnd, _ := procCPU(cmd.Process.Pid)
	cpu := win.stop(ownEnd - ownStart)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("pgbench: %w\n%s", err, out.String())
	}
	m := &measurement{Elapsed: duration, CPU: cpu}
	logs, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	for _, path := range logs {
		if err := readPgbenchLog(path, measureFrom, m); err != nil {
			return nil, err
		}
	}
	if m.Requests == 0 {
		return nil, fmt.Errorf("pgbench logged no transactions:\n%s", out.String())
	}
	if strings.Contains(out.String(), "aborted") && !strings.Contains(out.String(), "number of failed transactions: 0") {
		m.FirstError = lastLine(out.String())
	}
	slices.Sort(m.Latencies)
	return m, nil
}

// readPgbenchLog adds the transactions of one pgbench log that started
// after from: each line is "client tx latency_us script epoch_s epoch_us",
// the epoch being when the transaction ended.
func readPgbenchLog(path string, from time.Time, m *measurement) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		lat, err1 := strconv.ParseInt(fields[2], 10, 64)
		sec, err2 := strconv.ParseInt(fields[4], 10, 64)
		usec, err3 := strconv.ParseInt(fields[5], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			if fields[2] == "failed" || fields[2] == "skipped" {
				m.Errors++
			}
			continue
		}
		latency := time.Duration(lat) * time.Microsecond
		end := time.Unix(sec, usec*1000)
		if end.Add(-latency).Before(from) {
			continue
		}
		m.Requests++
		m.Latencies = append(m.Latencies, latency)
	}
	return sc.Err()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
