package events_test

import (
	"testing"
	"time"

	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
)

// The test helpers of the events package.

// changeOf is a change of a task of user with id.
func changeOf(user string, id int64) *model.TaskChange {
	return &model.TaskChange{Kind: model.ChangeUpdated, Task: &model.Task{ID: id, UserID: user, Title: "t"}}
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
