// Command subscriptions measures the taskChanged subscriptions and prints
// a table:
//
//   - event delay, p50 and p99, from sending a mutation to receiving its
//     event on a websocket: within one instance (SQLite, and PostgreSQL)
//     and across two instances on one PostgreSQL;
//   - memory per open, idle subscription, with 1,000 of them, each on a
//     websocket of its own;
//   - mutation throughput with those 1,000 subscribers connected (each
//     mutation is the change of one of their users) against none, in the
//     same run.
//
// Usage, from the repository's root:
//
//	go run ./bench/subscriptions
//	go run ./bench/subscriptions -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//
// The instances run in this process, wired as server.go wires them (the
// store, the event bus of their database, api.New); two PostgreSQL
// instances each have their own connection pool and LISTEN connection, so
// their changes travel through PostgreSQL as between processes. The 1,000
// subscribers run in a child process (this program, started again), so
// that their memory is not counted as the server's.
package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the benchmark's schema
	"github.com/uptrace/bun"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/database"
	"github.com/taskql/server/events"
	"github.com/taskql/server/graphqlws"
	"github.com/taskql/server/model"
	"github.com/taskql/server/postgres"
	"github.com/taskql/server/testutil/gqlws"
)

// secretEnv passes the token secret to the child process.
const secretEnv = "BENCH_SUBSCRIPTIONS_SECRET"

const subscription = `subscription { taskChanged { kind task { id title completed updatedAt } } }`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "clients" {
		if err := runClients(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "clients:", err)
			os.Exit(1)
		}
		return
	}
	var opts options
	flag.IntVar(&opts.subscribers, "subscribers", 1000, "idle subscribers for the memory and throughput figures")
	flag.IntVar(&opts.events, "events", 300, "events per delay figure")
	flag.IntVar(&opts.workers, "workers", 16, "concurrent clients in the throughput figures")
	flag.DurationVar(&opts.duration, "duration", 3*time.Second, "length of each throughput run")
	flag.IntVar(&opts.rounds, "rounds", 3, "rounds of throughput without and with subscribers")
	flag.StringVar(&opts.postgres, "postgres", os.Getenv("TEST_DATABASE_URL"), "PostgreSQL URL for the PostgreSQL figures (default $TEST_DATABASE_URL; none skips them)")
	flag.Parse()
	if err := run(context.Background(), opts, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "subscriptions:", err)
		os.Exit(1)
	}
}

type options struct {
	subscribers, events, workers int
	rounds                       int
	duration                     time.Duration
	postgres                     string
}

func run(ctx context.Context, opts options, out io.Writer) error {
	secret := []byte(randomHex(32))
	fmt.Fprintf(out, "taskChanged subscriptions: %s, GOMAXPROCS=%d, %d CPUs, load average %s at the start\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU(), loadAverage())

	dir, err := os.MkdirTemp("", "bench-subscriptions-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lite, err := startInstance(ctx, "sqlite://"+dir+"/bench.db", "", secret)
	if err != nil {
		return fmt.Errorf("SQLite instance: %w", err)
	}
	defer lite.close()

	type delayRow struct {
		name    string
		delays  []time.Duration
		skipped string
	}
	var rows []delayRow
	d, err := measureDelays(ctx, lite, lite, mint(secret, "delay-sqlite"), opts.events)
	if err != nil {
		return fmt.Errorf("delay on SQLite: %w", err)
	}
	rows = append(rows, delayRow{name: "one instance, SQLite (in-process bus)", delays: d})
	if opts.postgres == "" {
		rows = append(rows, delayRow{name: "PostgreSQL", skipped: "skipped: no -postgres URL"})
	} else {
		pgRows, err := postgresDelays(ctx, opts, secret)
		if err != nil {
			return fmt.Errorf("delay on PostgreSQL: %w", err)
		}
		for _, r := range pgRows {
			rows = append(rows, delayRow{name: r.name, delays: r.delays})
		}
	}
	fmt.Fprintf(out, "Event delay: from sending a mutation over HTTP to receiving its event on a websocket, %d events each, one at a time\n", opts.events)
	fmt.Fprintf(out, "  %-48s %10s %10s %10s\n", "", "p50", "p99", "max")
	for _, r := range rows {
		if r.skipped != "" {
			fmt.Fprintf(out, "  %-48s %s\n", r.name, r.skipped)
			continue
		}
		fmt.Fprintf(out, "  %-48s %10s %10s %10s\n", r.name, ms(percentile(r.delays, 50)), ms(percentile(r.delays, 99)), ms(r.delays[len(r.delays)-1]))
	}
	fmt.Fprintln(out)

	// Throughput without subscribers and with them, in alternating rounds
	// on one database, so that both see the same machine (other work
	// sharing the CPUs comes and goes); memory of the idle subscribers
	// in the first round.
	users := make([]string, opts.subscribers)
	tokens := make([]string, opts.subscribers)
	for i := range users {
		users[i] = "sub-" + strconv.Itoa(i)
		tokens[i] = mint(secret, users[i])
	}
	// A first run warms up the database file, the pools and the CPU
	// caches, and is not reported.
	if _, err := throughput(ctx, lite.URL, tokens, opts.workers, opts.duration/2); err != nil {
		return err
	}
	var (
		without, with      []result
		mem0, mem1         memStats
		received, expected int
	)
	for round := range opts.rounds {
		r, err := throughput(ctx, lite.URL, tokens, opts.workers, opts.duration)
		if err != nil {
			return err
		}
		without = append(without, r)

		before := memory()
		clients, err := startClients(ctx, lite.URL, secret, opts.subscribers)
		if err != nil {
			return err
		}
		if err := waitSubscribers(lite.bus, opts.subscribers, time.Minute); err != nil {
			clients.stop()
			return err
		}
		if round == 0 {
			time.Sleep(time.Second) // let the connections settle
			mem0, mem1 = before, memory()
		}
		r, err = throughput(ctx, lite.URL, tokens, opts.workers, opts.duration)
		if err != nil {
			clients.stop()
			return err
		}
		with = append(with, r)
		got, err := clients.received(r.ok, 30*time.Second)
		clients.stop()
		if err != nil {
			return err
		}
		received += got
		expected += r.ok
		if err := waitSubscribers(lite.bus, 0, time.Minute); err != nil {
			return err
		}
	}

	n := float64(opts.subscribers)
	fmt.Fprintf(out, "Memory per open, idle subscription (%d subscribers, each on its own websocket; server side only, after GC)\n", opts.subscribers)
	perSub := func(b0, b1 uint64) float64 { return (float64(b1) - float64(b0)) / n / 1024 }
	fmt.Fprintf(out, "  Go heap (live objects)              %8.1f KiB\n", perSub(mem0.heap, mem1.heap))
	fmt.Fprintf(out, "  goroutine stacks                    %8.1f KiB\n", perSub(mem0.stacks, mem1.stacks))
	fmt.Fprintf(out, "  heap + stacks                       %8.1f KiB\n", perSub(mem0.heap+mem0.stacks, mem1.heap+mem1.stacks))
	fmt.Fprintf(out, "  process RSS                         %8.1f KiB\n", perSub(mem0.rss, mem1.rss))
	fmt.Fprintf(out, "  goroutines                          %8.1f\n\n", float64(mem1.goroutines-mem0.goroutines)/n)

	fmt.Fprintf(out, "Mutation throughput: createTask over HTTP, %d concurrent clients, SQLite, one instance; %d rounds of\n", opts.workers, opts.rounds)
	fmt.Fprintf(out, "%v without subscribers, then %v with %d connected (each mutation is a change of one of their users)\n",
		opts.duration, opts.duration, opts.subscribers)
	fmt.Fprintf(out, "  %-36s %11s %10s   %s\n", "", "mutations/s", "p50", "rounds (mutations/s)")
	for _, row := range []struct {
		name string
		rs   []result
	}{
		{"no subscribers", without},
		{fmt.Sprintf("%d subscribers connected", opts.subscribers), with},
	} {
		rates := make([]string, len(row.rs))
		for i, r := range row.rs {
			rates[i] = fmt.Sprintf("%.0f", r.rate())
		}
		m := median(row.rs)
		fmt.Fprintf(out, "  %-36s %11.0f %10s   %s\n", row.name+" (median)", m.rate(), ms(m.p50), strings.Join(rates, ", "))
	}
	fmt.Fprintf(out, "  with / without (medians): %.2f\n", median(with).rate()/median(without).rate())
	failed := 0
	for _, r := range append(without, with...) {
		failed += r.failed
	}
	fmt.Fprintf(out, "  events received by the subscribers: %d of %d; failed mutations: %d\n", received, expected, failed)
	return nil
}

// instance is one server instance, wired as server.go wires it.
type instance struct {
	URL   string
	bus   events.Bus
	db    *bun.DB
	close func()
}

func startInstance(ctx context.Context, dbURL, channel string, secret []byte) (*instance, error) {
	db, err := database.Open(ctx, database.Config{URL: dbURL})
	if err != nil {
		return nil, err
	}
	if err := model.CreateSchema(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	tasks := model.NewTasks(db)
	var bus events.Bus = &events.Local{}
	if database.IsPostgres(dbURL) {
		pg := &postgres.Bus{URL: dbURL, Channel: channel}
		if err := pg.Start(ctx); err != nil {
			db.Close()
			return nil, err
		}
		bus = pg
	}
	tasks.WriteWith(bus.Writer())
	verifier, err := auth.New(ctx, auth.Config{Secret: secret})
	if err != nil {
		return nil, err
	}
	var sockets graphqlws.Connections
	handler := api.New(api.Config{
		Tasks:      tasks,
		Verifier:   verifier,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)), // formats, as a server logs
		Changes:    bus,
		Websockets: &sockets,
		// The benchmark's clients are few users making many changes.
		Limits: api.Limits{CostRefill: 1e9, CostBudget: 1 << 40},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return &instance{URL: "http://" + ln.Addr().String(), bus: bus, db: db, close: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sockets.Shutdown(ctx)
		srv.Shutdown(ctx)
		bus.Close()
		db.Close()
	}}, nil
}

// postgresDelays measures the delay on PostgreSQL, within one instance
// and across two, on a schema of its own.
func postgresDelays(ctx context.Context, opts options, secret []byte) ([]struct {
	name   string
	delays []time.Duration
}, error) {
	admin, err := sql.Open("pgx", opts.postgres)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	schema := "bench_subscriptions_" + randomHex(4)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, err
	}
	defer admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	u, err := url.Parse(opts.postgres)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	// A channel of its own: tests may be listening on the same database.
	channel := "task_changed_" + schema
	a, err := startInstance(ctx, u.String(), channel, secret)
	if err != nil {
		return nil, err
	}
	defer a.close()
	b, err := startInstance(ctx, u.String(), channel, secret)
	if err != nil {
		return nil, err
	}
	defer b.close()
	one, err := measureDelays(ctx, a, a, mint(secret, "delay-pg-one"), opts.events)
	if err != nil {
		return nil, err
	}
	two, err := measureDelays(ctx, a, b, mint(secret, "delay-pg-two"), opts.events)
	if err != nil {
		return nil, err
	}
	return []struct {
		name   string
		delays []time.Duration
	}{
		{"one instance, PostgreSQL (LISTEN/NOTIFY)", one},
		{"two instances, PostgreSQL: subscribe A, mutate B", two},
	}, nil
}

// measureDelays subscribes on sub and makes n changes on mut, one at a
// time, returning how long each took from sending the mutation to
// receiving its event, sorted.
func measureDelays(ctx context.Context, sub, mut *instance, token string, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, err := gqlws.Dial(ctx, sub.URL+"/graphql", nil)
	if err != nil {
		return nil, err
	}
	defer ws.CloseNow()
	if err := ws.Init(ctx, map[string]any{"Authorization": "Bearer " + token}); err != nil {
		return nil, err
	}
	subscribers := sub.bus.Subscribers()
	if err := ws.Subscribe(ctx, "1", subscription, nil); err != nil {
		return nil, err
	}
	if err := waitSubscribers(sub.bus, subscribers+1, 10*time.Second); err != nil {
		return nil, err
	}
	type arrival struct {
		id string
		at time.Time
	}
	arrivals := make(chan arrival, 1)
	go func() {
		for {
			msg, err := ws.Next(ctx)
			if err != nil {
				close(arrivals)
				return
			}
			var body struct {
				Data struct {
					TaskChanged struct{ Task struct{ ID string } }
				}
			}
			json.Unmarshal(msg.Payload, &body)
			arrivals <- arrival{body.Data.TaskChanged.Task.ID, time.Now()}
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second}
	var delays []time.Duration
	for i := range n {
		start := time.Now()
		id, err := createTask(ctx, client, mut.URL, token, "delay "+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		select {
		case a, ok := <-arrivals:
			if !ok || a.id != id {
				return nil, fmt.Errorf("change %d: got event of task %q, want %s", i, a.id, id)
			}
			delays = append(delays, a.at.Sub(start))
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("change %d: no event within 10s", i)
		}
	}
	slices.Sort(delays)
	return delays, nil
}

// result is a throughput run.
type result struct {
	ok, failed int
	elapsed    time.Duration
	p50        time.Duration
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// throughput creates tasks from workers concurrent clients for d, each
// change going to the next user of tokens in turn.
func throughput(ctx context.Context, base string, tokens []string, workers int, d time.Duration) (result, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var mu sync.Mutex
	var r result
	var latencies []time.Duration
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			ok, failed := 0, 0
			for time.Now().Before(deadline) {
				i := next.Add(1)
				t0 := time.Now()
				if _, err := createTask(ctx, client, base, tokens[int(i)%len(tokens)], "load "+strconv.FormatInt(i, 10)); err != nil {
					failed++
					continue
				}
				mine = append(mine, time.Since(t0))
				ok++
			}
			mu.Lock()
			r.ok += ok
			r.failed += failed
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	if r.ok == 0 {
		return r, errors.New("throughput: no mutation succeeded")
	}
	slices.Sort(latencies)
	r.p50 = percentile(latencies, 50)
	return r, nil
}

// median is the run of median rate.
func median(rs []result) result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.rate(), b.rate()) })
	return sorted[len(sorted)/2]
}

func createTask(ctx context.Context, client *http.Client, base, token, title string) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($t: String!) { createTask(input: {title: $t}) { id } }`,
		"variables": map[string]any{"t": title},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql", strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		Data   struct{ CreateTask struct{ ID string } }
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return "", err
	}
	if len(out.Errors) > 0 || out.Data.CreateTask.ID == "" {
		return "", fmt.Errorf("createTask: %d %v", res.StatusCode, out.Errors)
	}
	return out.Data.CreateTask.ID, nil
}

// memStats is the server side's memory, after garbage collection.
type memStats struct {
	heap, stacks uint64
	rss          uint64
	goroutines   int
}

func memory() memStats {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memStats{heap: ms.HeapAlloc, stacks: ms.StackInuse, rss: selfRSS(), goroutines: runtime.NumGoroutine()}
}

// selfRSS is this process's resident set, from /proc (0 elsewhere).
func selfRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// loadAverage is the machine's 1-minute load average, which says whether
// other work shared the CPUs with the run ("?" where /proc has none).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

func waitSubscribers(bus events.Bus, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for bus.Subscribers() != n {
		if time.Now().After(deadline) {
			return fmt.Errorf("want %d subscriptions, the bus has %d after %v", n, bus.Subscribers(), timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// clientProcess is the child process that holds the subscribers.
type clientProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Scanner
	once   sync.Once
}

// startClients starts n subscribers, of users sub-0 to sub-(n-1), in a
// child process.
func startClients(ctx context.Context, base string, secret []byte, n int) (*clientProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "clients", "-url", base, "-n", strconv.Itoa(n))
	cmd.Env = append(os.Environ(), secretEnv+"="+string(secret))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &clientProcess{cmd: cmd, stdin: stdin, stdout: bufio.NewScanner(stdout)}, nil
}

// received asks the child how many events its subscribers got, waiting up
// to timeout for want of them.
func (c *clientProcess) received(want int, timeout time.Duration) (int, error) {
	fmt.Fprintf(c.stdin, "count %d %d\n", want, timeout.Milliseconds())
	if !c.stdout.Scan() {
		return 0, fmt.Errorf("the client process ended: %v", c.stdout.Err())
	}
	return strconv.Atoi(strings.TrimSpace(c.stdout.Text()))
}

func (c *clientProcess) stop() {
	c.once.Do(func() {
		c.stdin.Close()
		c.cmd.Wait()
	})
}

// runClients is the child process: it holds n subscriptions open until
// its stdin closes, and answers "count WANT MILLIS" with the events its
// subscribers received, once WANT arrived or MILLIS passed.
func runClients(args []string) error {
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	base := fs.String("url", "", "server URL")
	n := fs.Int("n", 1000, "subscribers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret := []byte(os.Getenv(secretEnv))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	for i := range *n {
		ws, err := gqlws.Dial(ctx, *base+"/graphql", nil)
		if err != nil {
			return err
		}
		if err := ws.Init(ctx, map[string]any{"Authorization": "Bearer " + mint(secret, "sub-"+strconv.Itoa(i))}); err != nil {
			return err
		}
		if err := ws.Subscribe(ctx, "1", subscription, nil); err != nil {
			return err
		}
		go func() {
			for {
				msg, err := ws.Next(ctx)
				if err != nil {
					return
				}
				if msg.Type == "next" {
					got.Add(1)
				}
			}
		}()
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var want, millis int64
		if _, err := fmt.Sscanf(in.Text(), "count %d %d", &want, &millis); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Duration(millis) * time.Millisecond)
		for got.Load() < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println(got.Load())
	}
	// Exiting drops the connections, as vanishing clients do.
	return in.Err()
}

func mint(secret []byte, sub string) string {
	tok, err := auth.Mint(secret, auth.MintClaims{Subject: sub, TTL: 24 * time.Hour})
	if err != nil {
		panic(err) // a secret of 64 bytes always mints
	}
	return tok
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(i, len(sorted))-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
