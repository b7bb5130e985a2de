package events_test

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// The test helpers of the events package.

// changeOf is a change of a task of user with id.
func changeOf(user string, id int64) *model.TaskChange {
	return &model.TaskChange{Kind: model.ChangeUpdated, Task: &model.Task{ID: id, UserID: user, Title: "t"}}
}

// receive returns the next change of s, failing the test when none comes.
func receive(t *testing.T, s *events.Subscription) *model.TaskChange {
	t.Helper()
	select {
	case c, ok := <-s.Changes():
		if !ok {
			t.Fatalf("the subscription ended: %v", s.Err())
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change arrived")
		return nil
	}
}

// deliverWithin delivers changes, failing the test if Deliver blocks.
func deliverWithin(t *testing.T, h *events.Hub, changes ...*model.TaskChange) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Deliver(changes)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver blocked")
	}
}

// ended waits for s to end and returns its error.
func ended(t *testing.T, s *events.Subscription) error {
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

// newPostgresBus starts a Postgres bus on channel (testutil.NewPostgresBus),
// closed when the test ends. configure, if given, adjusts it before it
// starts.
func newPostgresBus(t *testing.T, channel string, configure ...func(*events.Postgres)) *events.Postgres {
	t.Helper()
	return testutil.NewPostgresBus(t, append([]func(*events.Postgres){func(p *events.Postgres) { p.Channel = channel }}, configure...)...)
}

// listenBackends waits until the bus has n PostgreSQL sessions and
// returns them, failing the test after 10s.
func listenBackends(t *testing.T, bus *events.Postgres, n int) map[int]testutil.Backend {
	t.Helper()
	var got map[int]testutil.Backend
	waitFor(t, fmt.Sprintf("%d sessions of the bus", n), func() bool {
		got = testutil.BusBackends(t, bus)
		return len(got) == n
	})
	return got
}

// uniqueChannel is a NOTIFY channel no other test uses.
func uniqueChannel(t *testing.T) string {
	t.Helper()
	return "task_changed_" + strings.ToLower(rand.Text())
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
