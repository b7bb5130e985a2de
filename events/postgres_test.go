package events_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

func TestPostgresBusCarriesChangesBetweenInstances(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	channel := uniqueChannel(t)
	// Two instances: one publishes, both listen.
	here, there := newPostgresBus(t, channel), newPostgresBus(t, channel)
	store := model.NewTasks(db)
	store.PublishTo(here)

	ctx := testutil.AsUser("alice")
	subHere, _ := here.Subscribe(ctx)
	subThere, _ := there.Subscribe(ctx)

	created, err := store.Create(ctx, model.CreateTaskInput{Title: "hello", Description: ptr("world")})
	if err != nil {
		t.Fatal(err)
	}
	for name, sub := range map[string]*events.Subscription{"the publishing instance": subHere, "another instance": subThere} {
		got := receive(t, sub)
		if got.Kind != model.ChangeCreated || !reflect.DeepEqual(got.Task, created) {
			t.Errorf("%s: got %s %+v, want CREATED %+v", name, got.Kind, got.Task, created)
		}
	}
}

func TestPostgresBusDeliversTheLargestChangesWhole(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t))
	store := model.NewTasks(db)
	store.PublishTo(bus)

	for _, tt := range []struct {
		name, user, char string
	}{
		// Published by the mutation's statement: PostgreSQL escapes
		// control characters as six bytes each.
		{"escaped text, short user id", "alice", "\x01"},
		// Too long for the statement: published in the transaction.
		{"user id of 64 line separators", strings.Repeat("\u2028", 64), "\u2028"},
		// Past one notification: sent in chunks.
		{"user id of 5000 bytes", strings.Repeat("u", 5000), "\u2028"},
	} {
		ctx := testutil.AsUser(tt.user)
		sub, _ := bus.Subscribe(ctx)
		created, err := store.Create(ctx, model.CreateTaskInput{
			Title:       "t" + strings.Repeat(tt.char, model.MaxTitleLength-1),
			Description: ptr("d" + strings.Repeat(tt.char, model.MaxDescriptionLength-1)),
		})
		if err != nil {
			t.Fatalf("%s: create: %v", tt.name, err)
		}
		if got := receive(t, sub); !reflect.DeepEqual(got.Task, created) {
			t.Errorf("%s: the task arrived changed", tt.name)
		}
	}
}

func TestPostgresBusPublishesEveryConcurrentCreateOnceAsCreated(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t))
	store := model.NewTasks(db)
	store.PublishTo(bus)

	// Enough at once that creates share statements (model.createGroups).
	const users, perUser = 8, 40
	subs := make([]*events.Subscription, users)
	created := make([][]*model.Task, users)
	var wg sync.WaitGroup
	errs := make(chan error, users*perUser)
	for u := range users {
		ctx := testutil.AsUser(fmt.Sprintf("user-%d", u))
		subs[u], _ = bus.Subscribe(ctx)
		created[u] = make([]*model.Task, perUser)
		for i := range perUser {
			wg.Add(1)
			go func() {
				defer wg.Done()
				task, err := store.Create(ctx, model.CreateTaskInput{Title: fmt.Sprintf("task %d of user %d", i, u)})
				if err == nil && (task.UserID != fmt.Sprintf("user-%d", u) || task.Title != fmt.Sprintf("task %d of user %d", i, u)) {
					err = fmt.Errorf("create %d of user %d returned %+v", i, u, task)
				}
				created[u][i] = task
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for u := range users {
		byID := map[int64]*model.Task{}
		for _, task := range created[u] {
			byID[task.ID] = task
		}
		if len(byID) != perUser {
			t.Fatalf("user %d: %d distinct ids for %d creates", u, len(byID), perUser)
		}
		// Each task once: a repeated event finds its task gone.
		for range perUser {
			got := receive(t, subs[u])
			if got.Kind != model.ChangeCreated || !reflect.DeepEqual(got.Task, byID[got.Task.ID]) {
				t.Fatalf("user %d: got %s %+v, want CREATED of one of its tasks not yet seen", u, got.Kind, got.Task)
			}
			delete(byID, got.Task.ID)
		}
	}
}

func TestPostgresBusPublishesInTheTransaction(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t))
	store := model.NewTasks(db)
	store.PublishTo(bus)
	ctx := testutil.AsUser("alice")
	sub, _ := bus.Subscribe(ctx)
	task, err := store.Create(ctx, model.CreateTaskInput{Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	receive(t, sub)

	// A NOTIFY in a transaction that rolls back is never delivered.
	err = db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		if err := bus.PublishTx(ctx, tx, []*model.TaskChange{{Kind: model.ChangeDeleted, Task: task}}); err != nil {
			return err
		}
		return context.Canceled // roll back
	})
	if err != context.Canceled {
		t.Fatalf("RunInTx: %v", err)
	}
	// deleteCompletedTasks sends one DELETED per task, in one statement.
	for _, title := range []string{"a", "b", "c"} {
		if _, err := store.Create(ctx, model.CreateTaskInput{Title: title, Completed: ptr(true)}); err != nil {
			t.Fatal(err)
		}
	}
	deleted, err := store.DeleteCompleted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"a", "b", "c"} {
		if got := receive(t, sub); got.Kind != model.ChangeCreated || got.Task.Title != title {
			t.Fatalf("got %s %q, want CREATED %q (and nothing of the rolled-back transaction)", got.Kind, got.Task.Title, title)
		}
	}
	for _, d := range deleted {
		if got := receive(t, sub); got.Kind != model.ChangeDeleted || !reflect.DeepEqual(got.Task, d) {
			t.Fatalf("got %s %+v, want DELETED %+v", got.Kind, got.Task, d)
		}
	}
}

func TestPostgresBusListensAgainAfterLosingItsConnection(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	channel := uniqueChannel(t)
	bus := newPostgresBus(t, channel)
	store := model.NewTasks(db)
	store.PublishTo(bus)
	ctx := testutil.AsUser("alice")
	sub, _ := bus.Subscribe(ctx)

	// What a database restart does to the listener, to it alone: the
	// shared test database stays up for the other tests.
	var killed int
	err := db.NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = ?`,
		`LISTEN "`+channel+`"`).Scan(context.Background(), &killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminate the listener: %v (%d terminated)", err, killed)
	}
	waitFor(t, "the listener to notice", func() bool { return !bus.Listening() })
	waitFor(t, "the listener to reconnect", bus.Listening)

	created, err := store.Create(ctx, model.CreateTaskInput{Title: "after the reconnect"})
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sub); got.Task.ID != created.ID {
		t.Fatalf("got %+v, want the task made after the reconnect", got.Task)
	}
}

func TestPostgresBusKeepsAQuietConnection(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t), func(p *events.Postgres) { p.HealthInterval = 20 * time.Millisecond })
	store := model.NewTasks(db)
	store.PublishTo(bus)
	ctx := testutil.AsUser("alice")
	sub, _ := bus.Subscribe(ctx)
	// Several health checks pass; the connection is kept.
	time.Sleep(200 * time.Millisecond)
	if !bus.Listening() {
		t.Fatal("the listener dropped a healthy connection")
	}
	created, err := store.Create(ctx, model.CreateTaskInput{Title: "after the pings"})
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sub); got.Task.ID != created.ID {
		t.Fatalf("got %+v, want the task made after the pings", got.Task)
	}
}

func TestPostgresBusStartRefuses(t *testing.T) {
	testutil.NewDB(t, testutil.Postgres) // skips without PostgreSQL
	started := newPostgresBus(t, uniqueChannel(t))
	tests := []struct {
		name string
		bus  *events.Postgres
		want string
	}{
		{"an unreachable database", &events.Postgres{URL: "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}, "listen for task changes: connect"},
		{"a URL that does not parse", &events.Postgres{URL: "postgres://%zz"}, "parse PostgreSQL URL"},
		{"a channel name PostgreSQL would cut", &events.Postgres{URL: os.Getenv("TEST_DATABASE_URL"), Channel: strings.Repeat("c", 64)}, "longer than"},
		{"a second start", started, "already started"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := tt.bus.Start(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
