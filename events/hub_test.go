package events_test

import (
	"context"
	"errors"
	"testing"

	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

func TestHubDeliversChangesToTheirUserOnly(t *testing.T) {
	var h events.Hub
	alice1, err := h.Subscribe(testutil.AsUser("alice"))
	if err != nil {
		t.Fatal(err)
	}
	alice2, _ := h.Subscribe(testutil.AsUser("alice"))
	bob, _ := h.Subscribe(testutil.AsUser("bob"))

	h.Deliver([]*model.TaskChange{changeOf("alice", 1), changeOf("bob", 2), changeOf("carol", 3), changeOf("alice", 4)})
	for _, s := range []*events.Subscription{alice1, alice2} {
		if got := testutil.Receive(t, s).Task.ID; got != 1 {
			t.Errorf("alice's first change: got task %d, want 1", got)
		}
		if got := testutil.Receive(t, s).Task.ID; got != 4 {
			t.Errorf("alice's second change: got task %d, want 4", got)
		}
	}
	if got := testutil.Receive(t, bob).Task.ID; got != 2 {
		t.Errorf("bob's change: got task %d, want 2", got)
	}
	select {
	case c := <-bob.Changes():
		t.Errorf("bob got another user's change: %+v", c.Task)
	default:
	}
}

func TestHubRefusesASubscriberWithoutAViewer(t *testing.T) {
	var h events.Hub
	if _, err := h.Subscribe(context.Background()); model.ErrorCode(err) != model.EUNAUTHENTICATED {
		t.Fatalf("Subscribe without a viewer: got %v, want EUNAUTHENTICATED", err)
	}
	if n := h.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers after a refusal", n)
	}
}

func TestHubEndsASlowSubscriberWithEventsMissedWithoutHoldingUpOthers(t *testing.T) {
	h := events.Hub{Buffer: 4}
	slow, _ := h.Subscribe(testutil.AsUser("alice"))
	fast, _ := h.Subscribe(testutil.AsUser("alice"))

	for i := range 10 {
		deliverWithin(t, &h, changeOf("alice", int64(i+1)))
		if i < 6 {
			if got := testutil.Receive(t, fast).Task.ID; got != int64(i+1) {
				t.Fatalf("fast subscriber: got task %d, want %d", got, i+1)
			}
		}
	}

	// The slow one keeps what it had buffered, in order, then learns why
	// its stream ended.
	for want := int64(1); want <= 4; want++ {
		if got := testutil.Receive(t, slow).Task.ID; got != want {
			t.Fatalf("slow subscriber's buffered change: got %d, want %d", got, want)
		}
	}
	// The message is how the client learns how far behind it was.
	err := testutil.Ended(t, slow)
	if want := "events missed: the client read too slowly, 5 events behind — refetch and resubscribe"; model.ErrorCode(err) != model.EEVENTSMISSED || err.Error() != want {
		t.Fatalf("slow subscriber ended with %v, want EEVENTSMISSED %q", err, want)
	}
	// The fast one is still open: its buffer has room for the rest.
	for want := int64(7); want <= 10; want++ {
		if got := testutil.Receive(t, fast).Task.ID; got != want {
			t.Fatalf("fast subscriber: got %d, want %d", got, want)
		}
	}
	if n := h.Subscribers(); n != 1 {
		t.Fatalf("want 1 subscriber left, got %d", n)
	}
}

func TestHubEndsASubscriptionWithItsContext(t *testing.T) {
	var h events.Hub
	ctx, cancel := context.WithCancel(testutil.AsUser("alice"))
	s, _ := h.Subscribe(ctx)
	cancel()
	if err := testutil.Ended(t, s); err != nil {
		t.Fatalf("a cancelled subscription ended with %v, want nil", err)
	}
	if n := h.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers after the only one ended", n)
	}
	// Delivering to a user whose subscriptions ended is a no-op.
	h.Deliver([]*model.TaskChange{changeOf("alice", 1)})
}

func TestHubCloseEndsEverySubscription(t *testing.T) {
	var h events.Hub
	a, _ := h.Subscribe(testutil.AsUser("alice"))
	b, _ := h.Subscribe(testutil.AsUser("bob"))
	h.Close()
	for _, s := range []*events.Subscription{a, b} {
		if err := testutil.Ended(t, s); err != nil {
			t.Errorf("ended with %v, want nil", err)
		}
	}
	if _, err := h.Subscribe(testutil.AsUser("alice")); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("Subscribe after Close: got %v, want ErrClosed", err)
	}
}

func TestLocalPublishesOnlyCommittedChanges(t *testing.T) {
	db := testutil.NewDB(t, testutil.SQLite)
	store := model.NewTasks(db)
	bus := testutil.NewBus(t, db, store)
	ctx := testutil.AsUser("alice")
	sub, err := bus.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Create(ctx, model.CreateTaskInput{Title: ""}); err == nil {
		t.Fatal("an empty title was accepted")
	}
	task, err := store.Create(ctx, model.CreateTaskInput{Title: "committed"})
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.Receive(t, sub); got.Kind != model.ChangeCreated || got.Task.ID != task.ID {
		t.Fatalf("got %s of task %d, want CREATED of %d", got.Kind, got.Task.ID, task.ID)
	}
}
