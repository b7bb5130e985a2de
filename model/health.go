package model

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultProbeEvery is how often, at most, Health.Ready asks the database
// itself while the last work failed, when Health.ProbeEvery is zero.
const DefaultProbeEvery = 5 * time.Second

// Health is what the server last saw of its database: whether the last
// statement a request sent got an answer. Readiness probes read it instead
// of asking the database, so that a platform probing an idle server every
// few seconds never keeps a serverless database (Neon) from suspending, nor
// wakes it (CONTRACT §3). Only after a failure does Ready ask the database
// itself, at most once per ProbeEvery, so that an instance recovers its
// readiness even while the load balancer sends it no requests.
//
// The store reports every statement it runs (Tasks.Health); other database
// work, such as the event bus's LISTEN, may report too. The zero Health is
// ready and never probes.
type Health struct {
	// Probe asks the database whether it answers (db.PingContext); nil
	// means a failure lasts until some work succeeds.
	Probe func(context.Context) error
	// ProbeEvery bounds how often Ready calls Probe while the last work
	// failed; zero means DefaultProbeEvery.
	ProbeEvery time.Duration

	mu sync.Mutex
	// err is the last work's failure; nil after a success.
	err error
	// at is when err was last set or probed: the next probe waits
	// ProbeEvery from there.
	at time.Time
	// seq counts reports, so that a probe's outcome does not overwrite
	// what a request reported while the probe ran.
	seq     uint64
	probing bool
	// now is time.Now; tests replace it.
	now func() time.Time
}

// Report records the outcome of database work: nil for a statement the
// database answered, the error otherwise. An error the work's own context
// caused (a client that went away, an execution timeout) and an answer
// about the request rather than the database (a constraint violation) say
// nothing of the database's health and are not recorded.
func (h *Health) Report(ctx context.Context, err error) {
	if err != nil && !databaseFailed(ctx, err) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	if err == nil && h.err == nil {
		return // the common case: nothing changes
	}
	h.err, h.at = err, h.clock()
}

// Err returns the failure of the last database work, nil after a success.
func (h *Health) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Ready reports whether the database answered the last work sent to it.
// While it did, Ready sends nothing. After a failure it returns that
// failure, and at most once per ProbeEvery asks the database again with
// Probe, whose success makes the server ready again.
func (h *Health) Ready(ctx context.Context) error {
	h.mu.Lock()
	if h.err == nil {
		h.mu.Unlock()
		return nil
	}
	every := h.ProbeEvery
	if every <= 0 {
		every = DefaultProbeEvery
	}
	now := h.clock()
	if h.Probe == nil || h.probing || now.Sub(h.at) < every {
		err := h.err
		h.mu.Unlock()
		return fmt.Errorf("the last database work failed: %w", err)
	}
	h.probing, h.at = true, now
	seq := h.seq
	h.mu.Unlock()

	probeErr := h.Probe(ctx)
	if probeErr != nil {
		probeErr = fmt.Errorf("probe the database: %w", probeErr)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	h.probing = false
	if h.seq == seq {
		// No work reported meanwhile: the probe is the latest word.
		h.err, h.at = probeErr, h.clock()
	}
	if h.err != nil {
		return fmt.Errorf("the last database work failed: %w", h.err)
	}
	return nil
}

func (h *Health) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

// databaseFailed reports whether err, returned by a statement run with
// ctx, means the database did not do its part: not when ctx itself ended
// (the caller stopped waiting), nor for an answer about the data sent
// (class 22, data exception; class 23, integrity constraint violation).
func databaseFailed(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "22", "23":
			return false
		}
	}
	return true
}
