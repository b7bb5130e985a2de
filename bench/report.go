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
	System   string `json:"system"`   // server, pgx or pgbench
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
	// machine has 200%), and the server's peak resident set.
	ServerCPU   float64 `json:"server_cpu_pct"`
	PostgresCPU float64 `json:"postgres_cpu_pct"`
	LoadGenCPU  float64 `json:"loadgen_cpu_pct"`
	OtherCPU    float64 `json:"other_cpu_pct"`
	ServerRSSMB float64 `json:"server_peak_rss_mb,omitempty"`
	// PGSessions is how many connections PostgreSQL accepted during the
	// window: a pool that closes and reopens connections under load
	// shows here.
	PGSessions int64 `json:"pg_sessions"`

	// The server's throughput as a fraction of the raw baselines' at the
	// same concurrency, measured in the same run.
	VsPgx     float64 `json:"vs_pgx,omitempty"`
	VsPgbench float64 `json:"vs_pgbench,omitempty"`
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

// Target is one of the targets and whether this run met it.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
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
	Users        int      `json:"users"`
	TasksPerUser int      `json:"tasks_per_user"`
	BigUserTasks int      `json:"big_user_tasks"`
	GrowthRows   int      `json:"growth_rows"`
	Warmup       string   `json:"warmup"`
	Duration     string   `json:"duration"`
	Conns        []int    `json:"conns"`
	ServerEnv    []string `json:"server_env,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func newResult(scenario, system, db string, conns int, m *measurement) Result {
	return Result{
		Scenario: scenario, System: system, DB: db, Conns: conns,
		Requests: m.Requests, Errors: m.Errors, FirstError: m.FirstError, RPS: m.rps(),
		P50Ms: ms(m.quantile(0.50)), P99Ms: ms(m.quantile(0.99)), MaxMs: ms(m.quantile(1)),
		ServerCPU: m.CPU.Server, PostgresCPU: m.CPU.Postgres, LoadGenCPU: m.CPU.LoadGen, OtherCPU: m.CPU.Other,
		ServerRSSMB: float64(m.CPU.PeakRSS) / (1 << 20), PGSessions: m.CPU.PGSessions,
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
	env := "the server's defaults"
	if len(r.Settings.ServerEnv) > 0 {
		env = strings.Join(r.Settings.ServerEnv, " ")
	}
	fmt.Fprintf(w, "server environment: %s\n", env)
	fmt.Fprintln(w, "CPU columns are percent of one core over the measured window (the machine has 100% per core); 'other' is the rest of the machine,"+
		" including PostgreSQL processes that exited during the window; 'new PG conns' counts connections PostgreSQL accepted during it.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tdb\tsystem\tc\treq/s\tp50 ms\tp99 ms\tmax ms\terrors\tserver CPU%\tpostgres CPU%\tloadgen CPU%\tother CPU%\tserver peak RSS MB\tnew PG conns\t× pgx\t× pgbench\t")
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
		server := "-"
		if x.System == "server" {
			server = fmt.Sprintf("%.0f", x.ServerCPU)
		}
		sessions := "-"
		if x.DB == "postgres" {
			sessions = fmt.Sprint(x.PGSessions)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.1f\t%d\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n",
			x.Scenario, x.DB, x.System, x.Conns, x.RPS, x.P50Ms, x.P99Ms, x.MaxMs, x.Errors,
			server, x.PostgresCPU, x.LoadGenCPU, x.OtherCPU, rss, sessions, ratio(x.VsPgx), ratio(x.VsPgbench))
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
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\nTargets (issue 6):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range r.Targets {
			mark := "MET"
			if !t.Met {
				mark = "NOT MET"
			}
			fmt.Fprintf(tw, "  %s\t%s\tgot %s\t%s\n", t.Name, t.Want, t.Got, mark)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// evaluate checks the targets against what was measured.
func (r *Report) evaluate() {
	add := func(name, want, got string, met bool) {
		r.Targets = append(r.Targets, Target{name, want, got, met})
	}
	const c = 32
	for _, t := range []struct {
		scenario string
		min      float64
	}{{"R", 6000}, {"W", 5000}} {
		s := r.find(t.scenario, "server", "postgres", c)
		if s == nil {
			continue
		}
		add(t.scenario+" req/s (PostgreSQL, c=32)", fmt.Sprintf("≥ %.0f", t.min), fmt.Sprintf("%.0f", s.RPS), s.RPS >= t.min)
		raw := 0.0
		for _, sys := range []string{"pgx", "pgbench"} {
			if b := r.find(t.scenario, sys, "postgres", c); b != nil {
				raw = max(raw, b.RPS)
			}
		}
		if raw > 0 {
			add(t.scenario+" vs raw baseline (best of pgx, pgbench)", "≥ 0.35", fmt.Sprintf("%.2f (raw %.0f req/s)", s.RPS/raw, raw), s.RPS/raw >= 0.35)
		}
		add(t.scenario+" p99 (PostgreSQL, c=32)", "≤ 15 ms", fmt.Sprintf("%.2f ms", s.P99Ms), s.P99Ms <= 15)
	}
	add("errors (whole run)", "0", fmt.Sprint(r.errorCount()), r.errorCount() == 0)
	for _, m := range r.Memory {
		if m.DB != "postgres" {
			continue
		}
		add("server RSS under load", "≤ 60 MB", fmt.Sprintf("%.1f MB", m.PeakMB), m.PeakMB <= 60)
		add("server RSS idle", "≤ 30 MB", fmt.Sprintf("%.1f MB after boot, %.1f MB after load", m.IdleBootMB, m.IdleAfterMB), m.IdleBootMB <= 30 && m.IdleAfterMB <= 30)
	}
	growth := func(name, small, big string) {
		a, b := r.probe(small, "server"), r.probe(big, "server")
		if a == nil || b == nil || a.P50Ms == 0 {
			return
		}
		add(name, "≤ 1.3×", fmt.Sprintf("%.2f× (p50 %.3f vs %.3f ms)", b.P50Ms/a.P50Ms, b.P50Ms, a.P50Ms), b.P50Ms/a.P50Ms <= 1.3)
	}
	growth("first page, big list vs small list", r.smallUser, r.bigUser)
	growth("first page, big table vs small table", r.smallTable, r.bigTable)
	for _, sc := range []string{"R", "W"} {
		if s := r.find(sc, "server", "sqlite", c); s != nil {
			add(sc+" on SQLite, c=32 (reported; no errors)", "0 errors", fmt.Sprintf("%.0f req/s, %d errors", s.RPS, s.Errors), s.Errors == 0)
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
