// Command bench measures the server under load against the database's own
// limit, measured in the same run on the same machine.
//
//	go run ./bench            the full run (about 15 minutes): README.md, "Benchmarks"
//	go run ./bench -smoke     a run of seconds that checks every scenario answers without errors
//
// It seeds a schema of its own (taskbench) in the given PostgreSQL and a
// SQLite file, builds and starts the server as in production, drives it
// with a closed-loop load generator at each concurrency, runs the same SQL
// through pgx and pgbench for the baseline, and prints a table and writes a
// JSON file under bench/results. It exits non-zero when any request failed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	pgURL      string
	schema     string
	smoke      bool
	warmup     time.Duration
	duration   time.Duration
	probe      time.Duration
	settle     time.Duration
	conns      []int
	users      int
	perUser    int
	big        int
	growthRows int
	scenarios  map[string]bool
	pgbench    bool
	pgl        bool
	out        string
	profile    string
	serverEnv  []string
	keep       bool
}

// allScenarios are the parts of a run -only can select.
var allScenarios = []string{"R", "W", "mixed", "deep", "growth", "table", "sqlite"}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	def := os.Getenv("BENCH_DATABASE_URL")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	fs.StringVar(&o.pgURL, "pg", def, "PostgreSQL to benchmark on (the schema is created there); default $BENCH_DATABASE_URL or the local test database")
	fs.StringVar(&o.schema, "schema", "", "schema of the benchmark's tables, dropped and recreated (default taskbench, or taskbench_smoke with -smoke)")
	fs.BoolVar(&o.smoke, "smoke", false, "a run of seconds on a small data set: checks that every scenario answers without errors")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up before each measurement (default 3s; smoke 300ms)")
	fs.DurationVar(&o.duration, "duration", 0, "measured time of each scenario (default 10s; smoke 1s)")
	fs.DurationVar(&o.probe, "probe", 0, "measured time of each one-at-a-time latency probe (default 3s; smoke 300ms)")
	fs.DurationVar(&o.settle, "settle", 0, "idle time after the load before the server's idle memory is read (default 30s; smoke 2s)")
	conns := fs.String("conns", "", "concurrencies, comma-separated (default 8,32; smoke 32)")
	fs.IntVar(&o.users, "users", 0, "seeded users (default 1000; smoke 100)")
	fs.IntVar(&o.perUser, "tasks", 200, "tasks per seeded user")
	fs.IntVar(&o.big, "big", 0, "tasks of the user whose list is deep (default 100000; smoke 2000)")
	fs.IntVar(&o.growthRows, "growth-rows", -1, "rows of the large table of the table-growth probe, against 10,000 (default 1000000; smoke 0: skipped)")
	only := fs.String("only", "", "run only these parts, comma-separated: "+strings.Join(allScenarios, ","))
	fs.BoolVar(&o.pgbench, "pgbench", true, "also measure with pgbench, when it is installed")
	fs.BoolVar(&o.pgl, "postgraphile", true, "also measure PostGraphile (R and W), when `npm ci` has run in bench/postgraphile")
	fs.StringVar(&o.out, "out", "", "JSON report path (default bench/results/<time>.json)")
	fs.StringVar(&o.profile, "profile", "", "save the server's CPU and allocation profiles of each scenario at the highest concurrency in this directory")
	env := fs.String("server-env", "", "extra environment of the server, comma-separated KEY=VALUE (e.g. LOG_LEVEL=warn,DB_MAX_OPEN_CONNS=32)")
	fs.BoolVar(&o.keep, "keep", false, "keep the schema and SQLite file afterwards")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	pick := func(d *time.Duration, full, smoke time.Duration) {
		if *d == 0 {
			*d = full
			if o.smoke {
				*d = smoke
			}
		}
	}
	pick(&o.warmup, 3*time.Second, 300*time.Millisecond)
	pick(&o.duration, 10*time.Second, time.Second)
	pick(&o.probe, 3*time.Second, 300*time.Millisecond)
	pick(&o.settle, 30*time.Second, 2*time.Second)
	pickInt := func(n *int, full, smoke int) {
		if *n <= 0 {
			*n = full
			if o.smoke {
				*n = smoke
			}
		}
	}
	pickInt(&o.users, 1000, 100)
	pickInt(&o.big, 100_000, 2000)
	if o.growthRows < 0 {
		o.growthRows = 1_000_000
		if o.smoke {
			o.growthRows = 0
		}
	}
	if o.schema == "" {
		o.schema = "taskbench"
		if o.smoke {
			o.schema = "taskbench_smoke"
		}
	}
	if *conns == "" {
		*conns = "8,32"
		if o.smoke {
			*conns = "32"
		}
	}
	for s := range strings.SplitSeq(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 || n > 512 {
			return nil, fmt.Errorf("-conns: %q is not a concurrency", s)
		}
		o.conns = append(o.conns, n)
	}
	o.scenarios = map[string]bool{}
	for _, s := range allScenarios {
		o.scenarios[s] = *only == ""
	}
	if *only != "" {
		for s := range strings.SplitSeq(*only, ",") {
			if _, ok := o.scenarios[s]; !ok {
				return nil, fmt.Errorf("-only: unknown part %q; want some of %s", s, strings.Join(allScenarios, ","))
			}
			o.scenarios[s] = true
		}
	}
	if *env != "" {
		for kv := range strings.SplitSeq(*env, ",") {
			if !strings.Contains(kv, "=") {
				return nil, fmt.Errorf("-server-env: %q is not KEY=VALUE", kv)
			}
			o.serverEnv = append(o.serverEnv, kv)
		}
	}
	return o, nil
}

// bench is one run: its options, where it keeps files, and what it found.
type bench struct {
	opt    *options
	root   string
	dir    string
	bin    string
	secret string
	log    io.Writer
	report *Report
	// sessions returns how many connections the benchmark's PostgreSQL
	// has accepted; nil outside the PostgreSQL phases. monitor is the
	// connection it asks on.
	sessions func() int64
	monitor  *pgx.Conn
}

// The application_name of each system's connections, by which a window
// finds the connections the system measured opened during it (the
// database's session count holds every client's).
const (
	appServer        = "taskbench-server"
	appServerOneUser = "taskbench-server-one-user"
	appPgx           = "taskbench-pgx"
	appPgbench       = "taskbench-pgbench"
	appPostGraphile  = "taskbench-postgraphile"
)

// ownConns returns a watch.own for the connections named app: when a
// window opens it reads PostgreSQL's clock, and when it closes it counts
// app's connections that started since and are still open. (One window
// at a time uses the monitor connection.) nil outside PostgreSQL phases.
func (b *bench) ownConns(app string) func() func() int64 {
	if b.monitor == nil {
		return nil
	}
	conn := b.monitor
	return func() func() int64 {
		ctx := context.Background()
		var since time.Time
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&since); err != nil {
			return nil
		}
		return func() int64 {
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND backend_start >= $2", app, since).Scan(&n); err != nil {
				return -1
			}
			return n
		}
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	opt, err := parseOptions(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	root, err := testutil.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "taskbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	secret := make([]byte, 24)
	rand.Read(secret)
	mode := "full"
	if opt.smoke {
		mode = "smoke"
	}
	b := &bench{
		opt: opt, root: root, dir: dir, secret: hex.EncodeToString(secret), log: os.Stderr,
		report: &Report{
			Time: time.Now().UTC(), Commit: gitCommit(root), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Mode: mode,
			Settings: Settings{
				Users: opt.users, TasksPerUser: opt.perUser, BigUserTasks: opt.big, GrowthRows: opt.growthRows,
				Warmup: opt.warmup.String(), Duration: opt.duration.String(), Conns: opt.conns, ServerEnv: opt.serverEnv,
			},
		},
	}
	if opt.scenarios["deep"] || opt.scenarios["growth"] || (opt.scenarios["table"] && opt.growthRows > 0) {
		b.report.Settings.OneUserEnv = envList(oneUserEnv)
	}
	b.logf("building the server")
	if b.bin, err = testutil.BuildServer(ctx, dir); err != nil {
		return err
	}
	if opt.scenarios["R"] || opt.scenarios["W"] || opt.scenarios["mixed"] || opt.scenarios["deep"] || opt.scenarios["growth"] {
		if err := b.postgres(ctx); err != nil {
			return err
		}
	}
	if opt.scenarios["table"] && opt.growthRows > 0 {
		if err := b.tableGrowth(ctx); err != nil {
			return err
		}
	}
	if opt.scenarios["sqlite"] {
		if err := b.sqlite(ctx); err != nil {
			return err
		}
	}

	r := b.report
	r.ratios()
	r.evaluate()
	r.print(stdout)
	out := opt.out
	if out == "" {
		out = filepath.Join(root, "bench", "results", r.Time.Format("20060102-150405")+"-"+mode+".json")
	}
	if err := r.write(out); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(stdout, "\nreport: %s\n", out)
	if n := r.errorCount(); n > 0 {
		return fmt.Errorf("%d requests failed", n)
	}
	for _, x := range r.Results {
		if x.Requests == 0 {
			return fmt.Errorf("%s %s %s c=%d completed no request", x.Scenario, x.DB, x.System, x.Conns)
		}
	}
	return nil
}

// envList is env as sorted KEY=VALUE strings.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// tokens mints a token per user id.
func (b *bench) tokens(ids ...string) ([]string, error) {
	out := make([]string, len(ids))
	for i, id := range ids {
		t, err := auth.Mint([]byte(b.secret), auth.MintClaims{Subject: id, Email: id + "@example.com", Name: "Bench " + id, TTL: 12 * time.Hour})
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// startServer starts the built server on databaseURL with the run's extra
// environment (-server-env, none by default), and pprof when profiles are
// wanted. oneUser adds oneUserEnv, for the parts that load one user.
func (b *bench) startServer(ctx context.Context, databaseURL string, oneUser bool) (*server, *httpTarget, error) {
	env := map[string]string{}
	if oneUser {
		for k, v := range oneUserEnv {
			env[k] = v
		}
	}
	for _, kv := range b.opt.serverEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if b.opt.profile != "" {
		env["PPROF_ADDR"] = "auto"
	}
	app := ""
	if strings.HasPrefix(databaseURL, "postgres") {
		app = appServer
		if oneUser {
			app = appServerOneUser
		}
		u, err := url.Parse(databaseURL)
		if err != nil {
			return nil, nil, err
		}
		q := u.Query()
		q.Set("application_name", app)
		u.RawQuery = q.Encode()
		databaseURL = u.String()
	}
	s, err := startServer(ctx, b.bin, b.dir, databaseURL, b.secret, env)
	if err != nil {
		return nil, nil, err
	}
	s.app = app
	return s, &httpTarget{addr: strings.TrimPrefix(s.url, "http://")}, nil
}

// serverRun measures one scenario against the server, saving profiles when
// asked to at the highest concurrency.
func (b *bench) serverRun(ctx context.Context, s *server, name, db string, c int, newOp func(int) (op, func(), error)) (*Result, error) {
	b.logf("%s %s server c=%d", name, db, c)
	var prof chan error
	if b.opt.profile != "" && c == b.opt.conns[len(b.opt.conns)-1] && s.pprof != "" {
		prof = make(chan error, 1)
		go func() {
			sleep(ctx, b.opt.warmup)
			prof <- b.saveProfile(ctx, s, fmt.Sprintf("%s-%s-c%d", name, db, c))
		}()
	}
	var own func() func() int64
	if s.app != "" {
		own = b.ownConns(s.app)
	}
	m, err := drive(ctx, c, b.opt.warmup, b.opt.duration, watch{serverPID: s.pid(), sessions: b.sessions, own: own}, newOp)
	if err != nil {
		return nil, err
	}
	if prof != nil {
		if err := <-prof; err != nil {
			b.logf("profile: %v", err)
		}
	}
	res := newResult(name, "server", db, c, m)
	b.report.Results = append(b.report.Results, res)
	return &res, nil
}

// saveProfile saves a CPU profile of the measured window and an allocation
// profile after it.
func (b *bench) saveProfile(ctx context.Context, s *server, name string) error {
	if err := os.MkdirAll(b.opt.profile, 0o755); err != nil {
		return err
	}
	secs := max(1, int(b.opt.duration.Seconds())-1)
	for _, p := range []struct{ path, file string }{
		{fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), name + ".cpu.pprof"},
		{"/debug/pprof/allocs", name + ".allocs.pprof"},
	} {
		if err := download(ctx, "http://"+s.pprof+p.path, filepath.Join(b.opt.profile, p.file)); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) rawRun(ctx context.Context, name, system string, c int, fn func() (*measurement, error)) error {
	b.logf("%s postgres %s c=%d", name, system, c)
	m, err := fn()
	if err != nil {
		return fmt.Errorf("%s %s c=%d: %w", name, system, c, err)
	}
	b.report.Results = append(b.report.Results, newResult(name, system, "postgres", c, m))
	return nil
}

// postgres runs the PostgreSQL scenarios and the growth probes by list size.
func (b *bench) postgres(ctx context.Context) error {
	opt := b.opt
	b.logf("seeding %d users × %d tasks in schema %s", opt.users, opt.perUser, opt.schema)
	store, err := resetPG(ctx, opt.pgURL, opt.schema)
	if err != nil {
		return err
	}
	if !opt.keep {
		defer store.drop(context.WithoutCancel(ctx))
	}
	now := time.Now()
	tx := newTexts(1)
	if err := store.load(ctx, seedRows(tx, 0, opt.users, opt.perUser, now), true); err != nil {
		return err
	}
	seeded, err := maxID(ctx, store.url)
	if err != nil {
		return err
	}
	ids := make([]string, opt.users)
	for i := range ids {
		ids[i] = userID(i)
	}
	tokens, err := b.tokens(ids...)
	if err != nil {
		return err
	}
	monitor, err := pgx.Connect(ctx, opt.pgURL)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer monitor.Close(context.WithoutCancel(ctx))
	b.sessions = func() int64 {
		var n int64
		monitor.QueryRow(ctx, "SELECT sessions FROM pg_stat_database WHERE datname = current_database()").Scan(&n)
		return n
	}
	b.monitor = monitor
	defer func() { b.sessions, b.monitor = nil, nil }()
	raw := &rawTarget{url: store.url, users: opt.users, sessions: b.sessions, own: b.ownConns(appPgx)}
	var pgb *pgbench
	if opt.pgbench {
		if bin := findPgbench(); bin != "" {
			pgb = &pgbench{sessions: b.sessions, own: b.ownConns(appPgbench), bin: bin, dbURL: libpqURL(opt.pgURL), schema: opt.schema, users: opt.users, dir: b.dir}
		} else {
			b.report.Notes = append(b.report.Notes, "pgbench is not installed: the raw baseline is pgx alone")
		}
	}

	s, target, err := b.startServer(ctx, store.url, false)
	if err != nil {
		return err
	}
	defer s.stop()
	target.tokens = tokens

	var pgl *pglProcess
	pglTarget := &httpTarget{tokens: tokens}
	if opt.pgl && (opt.scenarios["R"] || opt.scenarios["W"]) {
		if !pglInstalled(b.root) {
			note := "PostGraphile skipped: bench/postgraphile/node_modules is missing (run `npm ci` there)"
			b.logf("%s", note)
			b.report.Notes = append(b.report.Notes, note)
		} else {
			b.logf("starting PostGraphile over schema %s (role %s, row level security)", opt.schema, pglRole)
			if err := setupPostGraphile(ctx, opt.pgURL, opt.schema); err != nil {
				return err
			}
			if pgl, err = startPostGraphile(ctx, b.root, b.dir, opt.pgURL, opt.schema, b.secret, tokens[0], ids[0]); err != nil {
				return err
			}
			defer pgl.stop()
			pglTarget.addr = pgl.addr
		}
	}
	sleep(ctx, time.Second)
	mem := Memory{DB: "postgres", Settle: b.opt.settle.String()}
	mem.IdleBootMB, mem.IdleBootAnonMB = rssMB(s)

	// trim removes what a write scenario added, so that every scenario
	// sees the seeded table.
	trim := func() error { return store.trimAbove(ctx, seeded) }
	for _, c := range opt.conns {
		if opt.scenarios["R"] {
			if err := b.rawRun(ctx, "R", "pgx", c, func() (*measurement, error) { return raw.read(ctx, c, opt.warmup, opt.duration) }); err != nil {
				return err
			}
			if pgb != nil {
				if err := b.rawRun(ctx, "R", "pgbench", c, func() (*measurement, error) {
					return pgb.run(ctx, "read", pgbenchRead, c, opt.warmup, opt.duration)
				}); err != nil {
					return err
				}
			}
			if _, err := b.serverRun(ctx, s, "R", "postgres", c, target.read()); err != nil {
				return err
			}
			if pgl != nil {
				if err := b.pglRun(ctx, pgl, "R", c, pglTarget.pglRead()); err != nil {
					return err
				}
			}
		}
		if opt.scenarios["W"] {
			if err := b.rawRun(ctx, "W", "pgx", c, func() (*measurement, error) { return raw.write(ctx, c, opt.warmup, opt.duration) }); err != nil {
				return err
			}
			if err := trim(); err != nil {
				return err
			}
			if pgb != nil {
				if err := b.rawRun(ctx, "W", "pgbench", c, func() (*measurement, error) {
					return pgb.run(ctx, "write", pgbenchInsert, c, opt.warmup, opt.duration)
				}); err != nil {
					return err
				}
				if err := trim(); err != nil {
					return err
				}
			}
			if _, err := b.serverRun(ctx, s, "W", "postgres", c, target.write()); err != nil {
				return err
			}
			if err := trim(); err != nil {
				return err
			}
			if pgl != nil {
				if err := b.pglRun(ctx, pgl, "W", c, pglTarget.pglWrite()); err != nil {
					return err
				}
				if err := trim(); err != nil {
					return err
				}
			}
		}
		if opt.scenarios["mixed"] {
			if err := b.rawRun(ctx, "mixed", "pgx", c, func() (*measurement, error) { return raw.mixed(ctx, c, opt.warmup, opt.duration) }); err != nil {
				return err
			}
			if err := trim(); err != nil {
				return err
			}
			if _, err := b.serverRun(ctx, s, "mixed", "postgres", c, target.mixed()); err != nil {
				return err
			}
			if err := trim(); err != nil {
				return err
			}
		}
	}

	if opt.scenarios["deep"] || opt.scenarios["growth"] {
		// The one-user parts run on a server process of their own, the
		// only one with oneUserEnv; the main server keeps the defaults.
		one, oneTarget, err := b.startServer(ctx, store.url, true)
		if err != nil {
			return err
		}
		err = b.lists(ctx, store, raw, one, oneTarget, now)
		one.stop()
		if err != nil {
			return err
		}
	}

	sleep(ctx, b.opt.settle)
	mem.IdleAfterMB, mem.IdleAfterAnonMB = rssMB(s)
	for _, x := range b.report.Results {
		if x.DB == "postgres" && x.System == "server" {
			mem.PeakMB = max(mem.PeakMB, x.ServerRSSMB)
		}
	}
	mem.LogLinesTotal = s.lines.count()
	b.report.Memory = append(b.report.Memory, mem)
	return nil
}

// rssMB returns the server's resident set and its anonymous part, in MB.
// Read after the settle time: the Go runtime returns freed memory to the
// system gradually, so right after a load the set still holds its peak.
func rssMB(s *server) (total, anon float64) {
	t, a, err := procRSSParts(s.pid())
	if err != nil {
		return 0, 0
	}
	return float64(t) / (1 << 20), float64(a) / (1 << 20)
}

// lists adds a user with a long list and one with a short list, then runs
// the deep-page scenario and the probes of list size and totalCount.
func (b *bench) lists(ctx context.Context, store *pgStore, raw *rawTarget, s *server, target *httpTarget, now time.Time) error {
	opt := b.opt
	bigID, smallID := userID(opt.users+1), userID(opt.users+2)
	b.logf("adding a user with %d tasks and one with 100", opt.big)
	tx := newTexts(2)
	rows := append(tx.rowsFor(bigID, opt.big, now), tx.rowsFor(smallID, 100, now)...)
	if err := store.load(ctx, rows, true); err != nil {
		return err
	}
	defer func() {
		store.deleteUser(context.WithoutCancel(ctx), bigID)
		store.deleteUser(context.WithoutCancel(ctx), smallID)
	}()
	toks, err := b.tokens(bigID, smallID)
	if err != nil {
		return err
	}
	bigTok, smallTok := toks[0], toks[1]

	if opt.scenarios["deep"] {
		cursors, keys, err := b.walk(target, bigTok, opt.big)
		if err != nil {
			return err
		}
		for _, c := range opt.conns {
			if err := b.rawRun(ctx, "deep", "pgx", c, func() (*measurement, error) {
				return raw.deep(ctx, c, opt.warmup, opt.duration, bigID, keys)
			}); err != nil {
				return err
			}
			if _, err := b.serverRun(ctx, s, "deep", "postgres", c, target.deep(bigTok, cursors)); err != nil {
				return err
			}
		}
	}

	if opt.scenarios["growth"] {
		b.report.smallUser = "first page, 100-task user"
		b.report.bigUser = fmt.Sprintf("first page, %d-task user", opt.big)
		for _, p := range []struct {
			name  string
			token string
			uid   string
			doc   string
		}{
			{b.report.smallUser, smallTok, smallID, docList},
			{b.report.bigUser, bigTok, bigID, docList},
			{"first page + totalCount, 100-task user", smallTok, smallID, docCounted},
			{fmt.Sprintf("first page + totalCount, %d-task user", opt.big), bigTok, bigID, docCounted},
		} {
			if err := b.probeBoth(ctx, raw, target, p.name, p.token, p.uid, p.doc == docCounted, queryBody(p.doc)); err != nil {
				return err
			}
		}
	}
	return nil
}

// probeBoth measures one request at a time through the server and the same
// SQL through pgx.
func (b *bench) probeBoth(ctx context.Context, raw *rawTarget, target *httpTarget, name, token, uid string, counted bool, body []byte) error {
	b.logf("probe: %s", name)
	m, err := drive(ctx, 1, b.opt.warmup/3, b.opt.probe, watch{}, target.fixed(token, body))
	if err != nil {
		return err
	}
	b.report.Probes = append(b.report.Probes, newProbe(name, "server", m))
	m, err = raw.probe(ctx, b.opt.warmup/3, b.opt.probe, func(ctx context.Context, p *pgxpool.Pool) error {
		if err := rawRead(ctx, p, uid); err != nil {
			return err
		}
		if counted {
			return rawCount(ctx, p, uid)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.report.Probes = append(b.report.Probes, newProbe(name, "pgx", m))
	return nil
}

// walk pages through the whole list of a user, 100 at a time, and returns
// the cursors (and their keyset values) of the pages past the middle that
// are followed by a full page.
func (b *bench) walk(target *httpTarget, token string, n int) ([]string, []keyset, error) {
	b.logf("walking the %d-task list by cursor", n)
	var (
		cursors []string
		keys    []keyset
		after   *string
		seen    int
	)
	for {
		body := append([]byte(`{"query":`), appendJSONString(nil, docWalk)...)
		if after != nil {
			body = append(append(append(body, `,"variables":{"after":`...), appendJSONString(nil, *after)...), '}')
		}
		body = append(body, '}')
		resp, err := target.post(token, body)
		if err != nil {
			return nil, nil, fmt.Errorf("walk the list: %w", err)
		}
		var page struct {
			Data struct {
				Tasks struct {
					Nodes []struct {
						ID        string    `json:"id"`
						CreatedAt time.Time `json:"createdAt"`
					} `json:"nodes"`
					PageInfo struct {
						HasNextPage bool   `json:"hasNextPage"`
						EndCursor   string `json:"endCursor"`
					} `json:"pageInfo"`
				} `json:"tasks"`
			} `json:"data"`
		}
		if err := json.Unmarshal(resp, &page); err != nil {
			return nil, nil, fmt.Errorf("walk the list: %w", err)
		}
		nodes := page.Data.Tasks.Nodes
		seen += len(nodes)
		if !page.Data.Tasks.PageInfo.HasNextPage || len(nodes) == 0 {
			break
		}
		if seen >= n/2 && n-seen >= 20 {
			last := nodes[len(nodes)-1]
			id, err := strconv.ParseInt(last.ID, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("walk the list: id %q: %w", last.ID, err)
			}
			cursors = append(cursors, page.Data.Tasks.PageInfo.EndCursor)
			keys = append(keys, keyset{createdAt: last.CreatedAt, id: id})
		}
		c := page.Data.Tasks.PageInfo.EndCursor
		after = &c
	}
	if seen != n {
		return nil, nil, fmt.Errorf("walking the list by cursor saw %d tasks, want %d", seen, n)
	}
	if len(cursors) == 0 {
		return nil, nil, errors.New("the list is too short for deep pages")
	}
	return cursors, keys, nil
}

// tableGrowth measures the first page of a user in a table of 10,000 rows
// and in one of growthRows rows, in a schema of its own dropped afterwards.
func (b *bench) tableGrowth(ctx context.Context) error {
	opt := b.opt
	schema := opt.schema + "_growth"
	const small = 10_000
	b.logf("table growth: seeding %d rows in schema %s", small, schema)
	store, err := resetPG(ctx, opt.pgURL, schema)
	if err != nil {
		return err
	}
	defer store.drop(context.WithoutCancel(ctx))
	now := time.Now()
	tx := newTexts(3)
	if err := store.load(ctx, seedRows(tx, 0, small/opt.perUser, opt.perUser, now), true); err != nil {
		return err
	}
	s, target, err := b.startServer(ctx, store.url, true) // one user's probes
	if err != nil {
		return err
	}
	defer s.stop()
	uid := userID(0)
	toks, err := b.tokens(uid)
	if err != nil {
		return err
	}
	raw := &rawTarget{url: store.url, users: 1}
	b.report.smallTable = fmt.Sprintf("first page, %d-row table", small)
	b.report.bigTable = fmt.Sprintf("first page, %d-row table", opt.growthRows)
	if err := b.probeBoth(ctx, raw, target, b.report.smallTable, toks[0], uid, false, queryBody(docList)); err != nil {
		return err
	}
	b.logf("table growth: seeding %d more rows", opt.growthRows-small)
	const batch = 200_000
	for first := small / opt.perUser; first*opt.perUser < opt.growthRows; first += batch / opt.perUser {
		users := min(batch, opt.growthRows-first*opt.perUser) / opt.perUser
		if err := store.load(ctx, seedRows(tx, first, users, opt.perUser, now), true); err != nil {
			return err
		}
	}
	if n, err := store.count(ctx); err == nil {
		b.logf("table growth: %d rows", n)
	}
	return b.probeBoth(ctx, raw, target, b.report.bigTable, toks[0], uid, false, queryBody(docList))
}

// sqlite runs R and W against the server on an embedded SQLite file (the
// part "sqlite" of -only is both).
func (b *bench) sqlite(ctx context.Context) error {
	opt := b.opt
	path := filepath.Join(b.dir, "taskbench.db")
	if opt.keep {
		path = filepath.Join(b.root, "bench", "results", "taskbench.db")
	}
	b.logf("seeding SQLite %s", path)
	if _, err := newSQLite(ctx, path, seedRows(newTexts(1), 0, opt.users, opt.perUser, time.Now())); err != nil {
		return err
	}
	s, target, err := b.startServer(ctx, "sqlite://"+path, false)
	if err != nil {
		return err
	}
	defer s.stop()
	ids := make([]string, opt.users)
	for i := range ids {
		ids[i] = userID(i)
	}
	if target.tokens, err = b.tokens(ids...); err != nil {
		return err
	}
	sleep(ctx, time.Second)
	mem := Memory{DB: "sqlite", Settle: b.opt.settle.String()}
	mem.IdleBootMB, mem.IdleBootAnonMB = rssMB(s)
	for _, c := range opt.conns {
		if _, err := b.serverRun(ctx, s, "R", "sqlite", c, target.read()); err != nil {
			return err
		}
		if _, err := b.serverRun(ctx, s, "W", "sqlite", c, target.write()); err != nil {
			return err
		}
	}
	for _, x := range b.report.Results {
		if x.DB == "sqlite" {
			mem.PeakMB = max(mem.PeakMB, x.ServerRSSMB)
		}
	}
	sleep(ctx, b.opt.settle)
	mem.IdleAfterMB, mem.IdleAfterAnonMB = rssMB(s)
	mem.LogLinesTotal = s.lines.count()
	b.report.Memory = append(b.report.Memory, mem)
	return nil
}

func gitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		commit += "+dirty"
	}
	return commit
}
