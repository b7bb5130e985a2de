package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/taskql/server/testutil"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc: 100 on every
// Linux this runs on.
const clockTicks = 100

// procCPU returns the CPU time (user + system) process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields from
	// after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procRSS returns the resident set of process pid, in bytes.
func procRSS(pid int) (int64, error) {
	total, _, err := procRSSParts(pid)
	return total, err
}

// procRSSParts returns the resident set of process pid and its anonymous
// part (heap, stacks: what the process allocated), in bytes. The rest is
// mostly the pages of the binary it has run, which are counted in the
// resident set but shared and backed by the file.
func procRSSParts(pid int) (total, anon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	kb := func(v string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n << 10
	}
	found := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			total, found = kb(v), true
		} else if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			anon = kb(v)
		}
	}
	if !found {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return total, anon, nil
}

// postgresCPU returns the CPU time used by each process named "postgres"
// that this user can see, by pid: the database's share of the machine,
// which on this loopback setup is most of the work of a request.
func postgresCPU() map[int]time.Duration {
	entries, _ := os.ReadDir("/proc")
	total := map[int]time.Duration{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if d, err := procCPU(pid); err == nil {
			total[pid] = d
		}
	}
	return total
}

// postgresCPUSince is the CPU the postgres processes alive now used since
// start was read: a process that exited in between counts nothing (its
// CPU of the window is in "other"), and one that started counts whole.
// (Subtracting totals instead made the share negative when a backend or
// an autovacuum worker with CPU of its own exited during the window.)
func postgresCPUSince(start map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, now := range postgresCPU() {
		if was, ok := start[pid]; ok && was <= now {
			d += now - was
		} else {
			d += now // new, or a reused pid
		}
	}
	return d
}

// machineCPU returns the busy and total CPU time of the whole machine since
// boot, summed over its cores.
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int64
	for i, s := range f[1:] {
		n, _ := strconv.ParseInt(s, 10, 64)
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(sum-idle) * time.Second / clockTicks, time.Duration(sum) * time.Second / clockTicks
}

// selfCPU returns the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// watch says what a measurement window observes besides the machine: the
// server's process, PostgreSQL's count of accepted connections, and the
// connections of the system measured that opened during the window.
type watch struct {
	serverPID int
	sessions  func() int64
	// own, called when the window opens, returns what to call when it
	// closes: the number of the measured system's connections (by
	// application_name) that opened in between and are still open.
	own func() func() int64
}

// cpuWindow measures who used the CPU between start and stop: the server,
// PostgreSQL, the load generator and the rest of the machine.
type cpuWindow struct {
	watch
	sessionsAtStart int64
	ownAtStop       func() int64
	start           time.Time
	server          time.Duration
	postgres        map[int]time.Duration
	self            time.Duration
	busy            time.Duration

	// peakRSS is the largest resident set of the server seen while the
	// window is open, sampled every 20 ms.
	mu      sync.Mutex
	peakRSS int64
	stopped chan struct{}
	done    chan struct{}
}

// cpuShares are CPU times over a window as percentages of one core (200%
// is both cores of this machine).
type cpuShares struct {
	Server, Postgres, LoadGen, Other float64
	PeakRSS                          int64
	PGSessions                       int64
	// PGOwnNew is -1 where the system's own connections are not watched.
	PGOwnNew int64
}

func startWindow(wt watch) *cpuWindow {
	w := &cpuWindow{watch: wt, start: time.Now(), stopped: make(chan struct{}), done: make(chan struct{})}
	serverPID := wt.serverPID
	if wt.sessions != nil {
		w.sessionsAtStart = wt.sessions()
	}
	if wt.own != nil {
		w.ownAtStop = wt.own()
	}
	if serverPID > 0 {
		w.server, _ = procCPU(serverPID)
	}
	w.postgres = postgresCPU()
	w.self = selfCPU()
	w.busy, _ = machineCPU()
	go func() {
		defer close(w.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if serverPID > 0 {
				if rss, err := procRSS(serverPID); err == nil {
					w.mu.Lock()
					w.peakRSS = max(w.peakRSS, rss)
					w.mu.Unlock()
				}
			}
			select {
			case <-w.stopped:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// stop closes the window; extra is CPU spent outside this process on the
// load generator's behalf (pgbench's).
func (w *cpuWindow) stop(extra time.Duration) cpuShares {
	close(w.stopped)
	<-w.done
	elapsed := time.Since(w.start)
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / elapsed.Seconds() }
	var s cpuShares
	if w.serverPID > 0 {
		if d, err := procCPU(w.serverPID); err == nil {
			s.Server = pct(d - w.server)
		}
	}
	s.Postgres = pct(postgresCPUSince(w.postgres))
	s.LoadGen = pct(selfCPU() - w.self + extra)
	busy, _ := machineCPU()
	s.Other = max(0, pct(busy-w.busy)-s.Server-s.Postgres-s.LoadGen)
	s.PeakRSS = w.peakRSS
	if w.sessions != nil {
		s.PGSessions = w.sessions() - w.sessionsAtStart
	}
	s.PGOwnNew = -1
	if w.ownAtStop != nil {
		s.PGOwnNew = w.ownAtStop()
	}
	return s
}

// server is a running server binary.
type server struct {
	*testutil.Process
	app     string // its connections' application_name on PostgreSQL
	url     string // http://host:port
	pprof   string // host:port of net/http/pprof, when enabled
	logPath string
	lines   *lineCounter
}

// lineCounter counts the lines written to it (the server's log volume).
// It takes the server's stdout and stderr; exec copies both through one
// goroutine when they are the same writer.
type lineCounter struct {
	mu sync.Mutex
	n  int64
	w  io.Writer
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	c.mu.Unlock()
	return c.w.Write(p)
}

func (c *lineCounter) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for pprof.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// oneUserEnv is the only override of the server's defaults the benchmark
// makes, and only for the server process of the one-user parts (the walk
// of the big list, deep, the latency probes, the table-growth probes):
// they send thousands of requests a second as one user, which the default
// budget of each user (COST_BUDGET 50,000, COST_REFILL_PER_SECOND 10,000)
// refuses, as it should refuse a real client doing that. R, W and mixed
// spread their requests over every seeded user (a few a second each at
// the rates of this machine) and run on a server with the defaults.
var oneUserEnv = map[string]string{
	"COST_BUDGET":            "1000000000000",
	"COST_REFILL_PER_SECOND": "1000000000000",
}

// startServer runs bin as in production on databaseURL, listening on a free
// loopback port, and waits until it is ready (/readyz: the database too).
// env adds to or overrides the environment it gets (nothing else is set
// but APP_ENV, DATABASE_URL and AUTH_JWT_SECRET: every other setting,
// the pool's included, is the server's default); PPROF_ADDR set to
// "auto" picks a free port for it. The log goes to a file in dir, counted.
func startServer(ctx context.Context, bin, dir, databaseURL, secret string, env map[string]string) (*server, error) {
	vars := map[string]string{
		"APP_ENV":         "production",
		"DATABASE_URL":    databaseURL,
		"AUTH_JWT_SECRET": secret,
	}
	for k, v := range env {
		vars[k] = v
	}
	s := &server{}
	if vars["PPROF_ADDR"] == "auto" {
		var err error
		if s.pprof, err = freeAddr(); err != nil {
			return nil, err
		}
		vars["PPROF_ADDR"] = s.pprof
	}
	s.logPath = filepath.Join(dir, fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.lines = &lineCounter{w: logFile}
	// The server is told its address rather than asked for it, since at
	// LOG_LEVEL=warn it does not log the line that says where it listens:
	// testutil.Start picks a free port.
	p, err := testutil.Start(ctx, testutil.Options{Bin: bin, Dir: dir, Env: vars, Log: s.lines, ReadyPath: "/readyz"})
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("%w; its log:\n%s", err, tail(s.logPath))
	}
	go func() {
		<-p.Done()
		logFile.Close()
	}()
	s.Process, s.url = p, p.URL
	return s, nil
}

func (s *server) pid() int { return s.PID() }

// stop asks the server to shut down and waits for it.
func (s *server) stop() error { return s.Stop(40 * time.Second) }

// tail returns the last lines of the file at path.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// download saves what GET url answers in path.
func download(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
