package model

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// healthRig is a Health on a clock the test moves, whose probe counts its
// calls and answers probeErr.
type healthRig struct {
	h        *Health
	now      time.Time
	probes   int
	probeErr error
	// duringProbe, when set, runs inside the probe: work that reports
	// while a probe is out.
	duringProbe func(*Health)
}

func newHealthRig() *healthRig {
	r := &healthRig{now: time.Unix(1_700_000_000, 0)}
	r.h = &Health{ProbeEvery: 5 * time.Second, now: func() time.Time { return r.now }}
	r.h.Probe = func(context.Context) error {
		r.probes++
		if r.duringProbe != nil {
			r.duringProbe(r.h)
		}
		return r.probeErr
	}
	return r
}

func TestHealthAnswersFromTheLastWorkSeen(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	type step func(r *healthRig)
	report := func(ctx context.Context, err error) step { return func(r *healthRig) { r.h.Report(ctx, err) } }
	wait := func(d time.Duration) step { return func(r *healthRig) { r.now = r.now.Add(d) } }
	probeAnswers := func(err error) step { return func(r *healthRig) { r.probeErr = err } }
	tests := []struct {
		name  string
		steps []step
		// What ten Ready calls made after the steps, at one instant,
		// answer last, and how many of them asked the database.
		wantReady  bool
		wantProbes int
	}{
		{"ready before any work, with no query", nil, true, 0},
		{"ready after work succeeded, with no query", []step{report(bg, nil), wait(time.Hour)}, true, 0},
		{"not ready after work failed, with no query within the interval",
			[]step{report(bg, nil), report(bg, down), wait(4 * time.Second)}, false, 0},
		{"ready again once work succeeds after a failure",
			[]step{report(bg, down), report(bg, nil)}, true, 0},
		{"one probe per interval after a failure, still failing",
			[]step{report(bg, down), wait(5 * time.Second), probeAnswers(down)}, false, 1},
		{"a probe that succeeds makes it ready, and probing stops",
			[]step{report(bg, down), wait(5 * time.Second)}, true, 1},
		{"the caller's own context ending is not a failure",
			[]step{report(cancelled, context.Canceled)}, true, 0},
		{"a constraint violation is the database answering",
			[]step{report(bg, &pgconn.PgError{Code: "23505"})}, true, 0},
		{"a database error of its own is a failure",
			[]step{report(bg, &pgconn.PgError{Code: "57P01"})}, false, 0},
		{"work that fails while a probe runs wins over the probe's success",
			[]step{report(bg, down), wait(5 * time.Second), func(r *healthRig) {
				r.duringProbe = func(h *Health) { h.Report(bg, down) }
			}}, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newHealthRig()
			for _, s := range tt.steps {
				s(r)
			}
			var err error
			for range 10 {
				err = r.h.Ready(bg)
			}
			if gotReady := err == nil; gotReady != tt.wantReady {
				t.Errorf("Ready: %v, want ready %v", err, tt.wantReady)
			}
			if r.probes != tt.wantProbes {
				t.Errorf("ten probes of readiness queried the database %d times, want %d", r.probes, tt.wantProbes)
			}
		})
	}
}

func TestHealthProbesAgainOnlyAfterTheInterval(t *testing.T) {
	r := newHealthRig()
	r.probeErr = errors.New("still down")
	r.h.Report(context.Background(), errors.New("down"))
	for range 21 {
		r.h.Ready(context.Background())
		r.h.Ready(context.Background())
		r.now = r.now.Add(time.Second)
	}
	// 21 seconds of probes twice a second: at 5, 10, 15 and 20.
	if r.probes != 4 {
		t.Fatalf("%d probes in 20 seconds of failure, want 4 (one per 5s)", r.probes)
	}
}
