package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one scenario at one concurrency on one system.
type Result struct {
	Scenario string `json:"scenario"` // R, W, mixed, deep
	System   string `json:"system"`   // server, pgx, pgbench or postgraphile
	DB       string `json:"db"`       // postgres or sqlite
	Conns    int    `json:"conns"`

	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	RPS        float64 `json:"rps"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`

	// CPU use during the measured window, in percent of one core (this
	// machine has 200%), and the server's peak resident set. For
	// PostGraphile the "server" is its node process.
	ServerCPU float64 `json:"server_cpu_pct"`
	// ServerCPUPerReqUs is the server process's CPU over the window
	// divided by the requests of the window, in µs; 0 where no process of
	// the system is measured (pgx, pgbench).
	ServerCPUPerReqUs float64 `json:"server_cpu_us_per_req,omitempty"`
	PostgresCPU       float64 `json:"postgres_cpu_pct"`
	LoadGenCPU        float64 `json:"loadgen_cpu_pct"`
	OtherCPU          float64 `json:"other_cpu_pct"`
	ServerRSSMB       float64 `json:"server_peak_rss_mb,omitempty"`
	// PGSessions is how many connections PostgreSQL accepted during the
	// window: a pool that closes and reopens connections under load
	// shows here.
	PGSessions int64 `json:"pg_sessions"`
	// PGOwnNew is how many of the measured system's own connections
	// (by application_name) opened during the window and were still open
	// at its end; -1 where not watched (SQLite).
	PGOwnNew int64 `json:"pg_own_new_conns"`

	// The server's throughput as a fraction of the raw baselines' at the
	// same concurrency, measured in the same run.
	VsPgx          float64 `json:"vs_pgx,omitempty"`
	VsPgbench      float64 `json:"vs_pgbench,omitempty"`
	VsPostGraphile float64 `json:"vs_postgraphile,omitempty"`
}

// Probe is a latency measured one request at a time.
type Probe struct {
	Name     string  `json:"name"`
	System   string  `json:"system"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
}

// Memory is the server's resident set at rest and under load. The Anon
// figures are the part the process allocated (heap, stacks); the rest of
// the set is mostly pages of the binary's code.
type Memory struct {
	DB              string  `json:"db"`
	IdleBootMB      float64 `json:"idle_boot_mb"`
	IdleBootAnonMB  float64 `json:"idle_boot_anon_mb"`
	PeakMB          float64 `json:"peak_mb"`
	IdleAfterMB     float64 `json:"idle_after_load_mb"` // after the settle time
	IdleAfterAnonMB float64 `json:"idle_after_load_anon_mb"`
	Settle          string  `json:"settle"`
	LogLinesTotal   int64   `json:"log_lines"`
}

// Target is one of the issue's targets and whether this run met it.
type Target struct {
	Issue int    `json:"issue"`
	Name  string `json:"name"`
	Want  string `json:"want"`
	Got   string `json:"got"`
	Met   bool   `json:"met"`
	// NotMeasured: this run did not measure what the target needs (a
	// part left out with -only, pgbench not installed).
	NotMeasured bool `json:"not_measured,omitempty"`
}

// Report is everything one run measured; it is also the JSON file.
type Report struct {
	Time      time.Time `json:"time"`
	Commit    string    `json:"commit"`
	GoVersion string    `json:"go_version"`
	CPUs      int       `json:"cpus"`
	Mode      string    `json:"mode"`
	Settings  Settings  `json:"settings"`
	Results   []Result  `json:"results"`
	Probes    []Probe   `json:"probes"`
	Memory    []Memory  `json:"memory"`
	Targets   []Target  `json:"targets"`
	Notes     []string  `json:"notes,omitempty"`

	// The names of the growth probes, which hold the sizes of the run.
	smallUser, bigUser, smallTable, bigTable string
}

// Settings are the knobs of the run.
type Settings struct {
	Users        int    `json:"users"`
	TasksPerUser int    `json:"tasks_per_user"`
	BigUserTasks int    `json:"big_user_tasks"`
	GrowthRows   int    `json:"growth_rows"`
	Warmup       string `json:"warmup"`
	Duration     string `json:"duration"`
	Conns        []int  `json:"conns"`
	// ServerEnv is -server-env: what the run added to the environment of
	// every server process (nothing by default).
	ServerEnv []string `json:"server_env,omitempty"`
	// OneUserEnv is what the server process of the one-user parts (walk,
	// deep, probes) had on top, and only it.
	OneUserEnv []string `json:"one_user_server_env,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func newResult(scenario, system, db string, conns int, m *measurement) Result {
	perReq := 0.0
	if (system == "server" || system == "postgraphile") && m.Requests > 0 {
		perReq = m.CPU.Server / 100 * m.Elapsed.Seconds() / float64(m.Requests) * 1e6
	}
	return Result{
		ServerCPUPerReqUs: perReq,
		Scenario:          scenario, System: system, DB: db, Conns: conns,
		Requests: m.Requests, Errors: m.Errors, FirstError: m.FirstError, RPS: m.rps(),
		P50Ms: ms(m.quantile(0.50)), P99Ms: ms(m.quantile(0.99)), MaxMs: ms(m.quantile(1)),
		ServerCPU: m.CPU.Server, PostgresCPU: m.CPU.Postgres, LoadGenCPU: m.CPU.LoadGen, OtherCPU: m.CPU.Other,
		ServerRSSMB: float64(m.CPU.PeakRSS) / (1 << 20), PGSessions: m.CPU.PGSessions, PGOwnNew: m.CPU.PGOwnNew,
	}
}

func newProbe(name, system string, m *measurement) Probe {
	return Probe{Name: name, System: system, Requests: m.Requests, Errors: m.Errors,
		P50Ms: ms(m.quantile(0.50)), P99Ms: ms(m.quantile(0.99))}
}

// find returns the result of scenario on system at conns, if measured.
func (r *Report) find(scenario, system, db string, conns int) *Result {
	for i := range r.Results {
		x := &r.Results[i]
		if x.Scenario == scenario && x.System == system && x.DB == db && x.Conns == conns {
			return x
		}
	}
	return nil
}

func (r *Report) probe(name, system string) *Probe {
	for i := range r.Probes {
		if r.Probes[i].Name == name && r.Probes[i].System == system {
			return &r.Probes[i]
		}
	}
	return nil
}

// ratios fills VsPgx and VsPgbench of the server's results.
func (r *Report) ratios() {
	for i := range r.Results {
		x := &r.Results[i]
		if x.System != "server" || x.DB != "postgres" {
			continue
		}
		if b := r.find(x.Scenario, "pgx", x.DB, x.Conns); b != nil && b.RPS > 0 {
			x.VsPgx = x.RPS / b.RPS
		}
		if b := r.find(x.Scenario, "pgbench", x.DB, x.Conns); b != nil && b.RPS > 0 {
			x.VsPgbench = x.RPS / b.RPS
		}
		if b := r.find(x.Scenario, "postgraphile", x.DB, x.Conns); b != nil && b.RPS > 0 {
			x.VsPostGraphile = x.RPS / b.RPS
		}
	}
}

// errorCount is the number of failed requests of the whole run.
func (r *Report) errorCount() int64 {
	var n int64
	for _, x := range r.Results {
		n += x.Errors
	}
	for _, p := range r.Probes {
		n += p.Errors
	}
	return n
}

// print writes the human-readable tables.
func (r *Report) print(w io.Writer) {
	fmt.Fprintf(w, "\nBenchmark %s, %s, commit %s, %s, %d CPUs; %d users × %d tasks; warm-up %s, measured %s\n",
		r.Mode, r.Time.Format(time.RFC3339), r.Commit, r.GoVersion, r.CPUs, r.Settings.Users, r.Settings.TasksPerUser, r.Settings.Warmup, r.Settings.Duration)
	env := "the server's defaults (no COST_*, DB_* or other override)"
	if len(r.Settings.ServerEnv) > 0 {
		env = "the server's defaults plus -server-env " + strings.Join(r.Settings.ServerEnv, " ")
	}
	fmt.Fprintf(w, "server environment of R, W, mixed and SQLite: %s\n", env)
	if len(r.Settings.OneUserEnv) > 0 {
		fmt.Fprintf(w, "one-user parts (walk, deep, probes) on a second server process with %s: one user past the per-user budget by design\n", strings.Join(r.Settings.OneUserEnv, " "))
	}
	fmt.Fprintln(w, "CPU columns are percent of one core over the measured window (the machine has 100% per core); 'server' is the server's process, or PostGraphile's node process;"+
		" 'other' is the rest of the machine, including PostgreSQL processes that exited during the window; 'server µs/req' is that process's CPU over the window ÷ its requests;"+
		" 'PG sessions' counts connections PostgreSQL accepted during the window (pg_stat_database.sessions of the whole database: any client's, other programs' included);"+
		" 'own new conns' counts the measured system's connections (by application_name) that opened during the window and were still open at its end.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tdb\tsystem\tc\treq/s\tp50 ms\tp99 ms\tmax ms\terrors\tserver CPU%\tserver µs/req\tpostgres CPU%\tloadgen CPU%\tother CPU%\tserver peak RSS MB\tPG sessions\town new conns\t× pgx\t× pgbench\t× PostGraphile\t")
	for _, x := range r.Results {
		ratio := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", v)
		}
		rss := "-"
		if x.ServerRSSMB > 0 {
			rss = fmt.Sprintf("%.1f", x.ServerRSSMB)
		}
		server, perReq := "-", "-"
		if x.System == "server" || x.System == "postgraphile" {
			server = fmt.Sprintf("%.0f", x.ServerCPU)
			perReq = fmt.Sprintf("%.0f", x.ServerCPUPerReqUs)
		}
		sessions, own := "-", "-"
		if x.DB == "postgres" {
			sessions = fmt.Sprint(x.PGSessions)
		}
		if x.PGOwnNew >= 0 && x.DB == "postgres" {
			own = fmt.Sprint(x.PGOwnNew)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.1f\t%d\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			x.Scenario, x.DB, x.System, x.Conns, x.RPS, x.P50Ms, x.P99Ms, x.MaxMs, x.Errors,
			server, perReq, x.PostgresCPU, x.LoadGenCPU, x.OtherCPU, rss, sessions, own, ratio(x.VsPgx), ratio(x.VsPgbench), ratio(x.VsPostGraphile))
	}
	tw.Flush()
	for _, x := range r.Results {
		if x.FirstError != "" {
			fmt.Fprintf(w, "first error of %s %s %s c=%d: %s\n", x.Scenario, x.DB, x.System, x.Conns, x.FirstError)
		}
	}

	if len(r.Probes) > 0 {
		fmt.Fprintln(w, "\nLatency one request at a time (PostgreSQL):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "probe\tsystem\trequests\tp50 ms\tp99 ms\terrors\t")
		for _, p := range r.Probes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%d\t\n", p.Name, p.System, p.Requests, p.P50Ms, p.P99Ms, p.Errors)
		}
		tw.Flush()
	}
	if len(r.Memory) > 0 {
		fmt.Fprintln(w, "\nServer memory (resident set):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "db\tidle after boot MB (anon)\tpeak under load MB\tidle after load MB (anon)\tafter\tlog lines\t")
		for _, m := range r.Memory {
			fmt.Fprintf(tw, "%s\t%.1f (%.1f)\t%.1f\t%.1f (%.1f)\t%s\t%d\t\n", m.DB, m.IdleBootMB, m.IdleBootAnonMB, m.PeakMB, m.IdleAfterMB, m.IdleAfterAnonMB, m.Settle, m.LogLinesTotal)
		}
		fmt.Fprintln(w, "(anon: what the server allocated; the rest of the resident set is mostly the binary's code pages)")
		tw.Flush()
	}
	for _, issue := range []struct {
		n     int
		title string
	}{{12, "Targets (issue 12), from this run at c=32:"}, {6, "Earlier targets (issue 6), still reported:"}} {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		printed := false
		for _, t := range r.Targets {
			if t.Issue != issue.n {
				continue
			}
			if !printed {
				fmt.Fprintln(w, "\n"+issue.title)
				printed = true
			}
			mark := "met"
			if t.NotMeasured {
				mark = "not measured"
			} else if !t.Met {
				mark = "MISSED"
			}
			fmt.Fprintf(tw, "  %s\t%s\tgot %s\t%s\n", t.Name, t.Want, t.Got, mark)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// evaluate checks the issues' targets against what was measured: issue
// 12's, all from the same run at c=32, then those of issue 6 that it did
// not replace.
func (r *Report) evaluate() {
	add := func(issue int, name, want, got string, met bool) {
		r.Targets = append(r.Targets, Target{Issue: issue, Name: name, Want: want, Got: got, Met: met})
	}
	missing := func(issue int, name, want, why string) {
		r.Targets = append(r.Targets, Target{Issue: issue, Name: name, Want: want, Got: "not measured (" + why + ")", NotMeasured: true})
	}
	const c = 32
	server := func(sc string) *Result { return r.find(sc, "server", "postgres", c) }

	// Issue 12.
	for _, t := range []struct {
		scenario, base, label string
		min                   float64
	}{
		{"R", "pgbench", "pgbench", 0.35},
		{"R", "postgraphile", "PostGraphile", 5},
		{"W", "pgbench", "pgbench", 0.45},
	} {
		name := fmt.Sprintf("%s vs %s (server req/s ÷ %s req/s)", t.scenario, t.label, t.label)
		want := fmt.Sprintf("≥ %.2f×", t.min)
		s, b := server(t.scenario), r.find(t.scenario, t.base, "postgres", c)
		switch {
		case s == nil:
			missing(12, name, want, "no server row at c=32")
		case b == nil || b.RPS == 0:
			missing(12, name, want, "no "+t.base+" row at c=32")
		default:
			ratio := s.RPS / b.RPS
			add(12, name, want, fmt.Sprintf("%.2f× (%.0f vs %.0f req/s)", ratio, s.RPS, b.RPS), ratio >= t.min)
		}
	}
	for _, sc := range []string{"R", "W"} {
		name, want := sc+" p99 (server)", "≤ 15 ms"
		if s := server(sc); s != nil {
			add(12, name, want, fmt.Sprintf("%.2f ms", s.P99Ms), s.P99Ms <= 15)
		} else {
			missing(12, name, want, "no server row at c=32")
		}
	}
	add(12, "errors (whole run, every system)", "0", fmt.Sprint(r.errorCount()), r.errorCount() == 0)
	var own, sessions int64
	var rows []string
	watched := true
	for _, x := range r.Results {
		if x.System == "server" && x.DB == "postgres" && x.Conns == c {
			own += x.PGOwnNew
			sessions += x.PGSessions
			watched = watched && x.PGOwnNew >= 0
			rows = append(rows, fmt.Sprintf("%s %d", x.Scenario, x.PGOwnNew))
		}
	}
	const sessName = "server's new PG connections in its windows"
	switch {
	case len(rows) == 0:
		missing(12, sessName, "0", "no server row at c=32")
	case !watched:
		missing(12, sessName, "0", "the server's connections could not be told apart")
	default:
		add(12, sessName, "0", fmt.Sprintf("%d (%s; database-wide sessions %d)", own, strings.Join(rows, ", "), sessions), own == 0)
	}
	memMeasured := false
	for _, m := range r.Memory {
		if m.DB == "postgres" {
			memMeasured = true
			add(12, "server peak RSS under load (PostgreSQL)", "≤ 60 MB", fmt.Sprintf("%.1f MB", m.PeakMB), m.PeakMB <= 60)
		}
	}
	if !memMeasured {
		missing(12, "server peak RSS under load (PostgreSQL)", "≤ 60 MB", "no PostgreSQL phase")
	}
	growth := func(issue int, name, small, big, why string) {
		a, b := r.probe(small, "server"), r.probe(big, "server")
		if a == nil || b == nil || a.P50Ms == 0 {
			missing(issue, name, "≤ 1.3×", why)
			return
		}
		add(issue, name, "≤ 1.3×", fmt.Sprintf("%.2f× (p50 %.3f vs %.3f ms)", b.P50Ms/a.P50Ms, b.P50Ms, a.P50Ms), b.P50Ms/a.P50Ms <= 1.3)
	}
	bigName := "first page, 100000-task user vs 100-task user"
	if r.bigUser != "" {
		bigName = strings.TrimPrefix(r.bigUser, "first page, ") + " vs 100-task user, first page"
	}
	growth(12, bigName, r.smallUser, r.bigUser, "growth probes not run")

	// Issue 6, where issue 12 did not replace it.
	for _, t := range []struct {
		scenario string
		min      float64
	}{{"R", 6000}, {"W", 5000}} {
		if s := server(t.scenario); s != nil {
			add(6, t.scenario+" req/s (PostgreSQL, c=32)", fmt.Sprintf("≥ %.0f", t.min), fmt.Sprintf("%.0f", s.RPS), s.RPS >= t.min)
		}
	}
	for _, m := range r.Memory {
		if m.DB == "postgres" {
			add(6, "server RSS idle", "≤ 30 MB", fmt.Sprintf("%.1f MB after boot, %.1f MB after load", m.IdleBootMB, m.IdleAfterMB), m.IdleBootMB <= 30 && m.IdleAfterMB <= 30)
		}
	}
	if r.smallTable != "" {
		growth(6, "first page, big table vs small table", r.smallTable, r.bigTable, "table probes not run")
	}
	for _, sc := range []string{"R", "W"} {
		if s := r.find(sc, "server", "sqlite", c); s != nil {
			add(6, sc+" on SQLite, c=32 (reported; no errors)", "0 errors", fmt.Sprintf("%.0f req/s, %d errors", s.RPS, s.Errors), s.Errors == 0)
		}
	}
}

// write saves the report as JSON under dir and returns the file's path.
func (r *Report) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
