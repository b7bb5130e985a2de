package testutil

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
	"github.com/taskql/server/postgres"
)

// NewBus returns the event bus the server would use on db's dialect,
// started, with store (if not nil) writing through it, closed when the
// test ends: in process on SQLite; LISTEN/NOTIFY on PostgreSQL
// (NewPostgresBus).
func NewBus(t testing.TB, db *bun.DB, store *model.Tasks) events.Bus {
	t.Helper()
	var bus events.Bus
	if db.Dialect().Name() == dialect.PG {
		bus = NewPostgresBus(t)
	} else {
		bus = &events.Local{}
		t.Cleanup(bus.Close)
	}
	if store != nil {
		store.WriteWith(bus.Writer())
	}
	return bus
}

// NewPostgresBus starts a postgres.Bus on TEST_DATABASE_URL, closed when
// the test ends, on a channel of its own, so that parallel tests sharing
// the database do not hear each other, and with an application_name of
// its own, so that BusBackends finds its connection. configure, if given,
// adjusts it before it starts (which opens LISTEN once, for Linger).
func NewPostgresBus(t testing.TB, configure ...func(*postgres.Bus)) *postgres.Bus {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		adminDB(t) // skips, or fails when PostgreSQL is required
	}
	u, _ := WithApplicationName(t, base, "bus")
	bus := &postgres.Bus{URL: u, Channel: "task_changed_" + randomHex(8)}
	for _, c := range configure {
		c(bus)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.Start(ctx); err != nil {
		t.Fatalf("start the PostgreSQL event bus: %v", err)
	}
	t.Cleanup(bus.Close)
	return bus
}

// BusBackends returns the PostgreSQL sessions of a bus NewPostgresBus
// started: its LISTEN connection, while it has one.
func BusBackends(t testing.TB, bus *postgres.Bus) map[int]Backend {
	t.Helper()
	return Backends(t, busApplicationName(t, bus))
}

// TerminateBus ends the sessions of a bus NewPostgresBus started, as a
// database restart or a suspending Neon compute would, without touching
// the sessions of other tests, and returns how many it ended.
func TerminateBus(t testing.TB, bus *postgres.Bus) int {
	t.Helper()
	return TerminateBackends(t, busApplicationName(t, bus))
}

func busApplicationName(t testing.TB, bus *postgres.Bus) string {
	t.Helper()
	u, err := url.Parse(bus.URL)
	if err != nil || u.Query().Get("application_name") == "" {
		t.Fatalf("bus URL %q has no application_name: start the bus with NewPostgresBus", bus.URL)
	}
	return u.Query().Get("application_name")
}

// Receive returns the next change of s, failing the test when none comes
// within 10s.
func Receive(t testing.TB, s *events.Subscription) *model.TaskChange {
	t.Helper()
	select {
	case c, ok := <-s.Changes():
		if !ok {
			t.Fatalf("the subscription ended: %v", s.Err())
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change arrived")
	}
	return nil
}

// Ended waits for s to end, reading past the changes it still holds, and
// returns its error; it fails the test after 10s.
func Ended(t testing.TB, s *events.Subscription) error {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-s.Changes():
			if !ok {
				return s.Err()
			}
		case <-deadline:
			t.Fatal("the subscription did not end")
		}
	}
}

// WaitFor polls cond until it holds, failing the test after 10s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
