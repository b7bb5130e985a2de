package postgres_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
	"github.com/taskql/server/postgres"
	"github.com/taskql/server/testutil"
)

func TestPostgresBusCarriesChangesBetweenInstances(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	channel := uniqueChannel(t)
	// Two instances: one publishes, both listen.
	here, there := newPostgresBus(t, channel), newPostgresBus(t, channel)
	store := model.NewTasks(db)
	store.WriteWith(here.Writer())

	ctx := testutil.AsUser("alice")
	subHere, _ := here.Subscribe(ctx)
	subThere, _ := there.Subscribe(ctx)

	created, err := store.Create(ctx, model.CreateTaskInput{Title: "hello", Description: testutil.Ptr("world")})
	if err != nil {
		t.Fatal(err)
	}
	for name, sub := range map[string]*events.Subscription{"the publishing instance": subHere, "another instance": subThere} {
		got := testutil.Receive(t, sub)
		if got.Kind != model.ChangeCreated || !reflect.DeepEqual(got.Task, created) {
			t.Errorf("%s: got %s %+v, want CREATED %+v", name, got.Kind, got.Task, created)
		}
	}
}

func TestPostgresBusDeliversTheLargestChangesWhole(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t))
	store := model.NewTasks(db)
	store.WriteWith(bus.Writer())

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
			Description: testutil.Ptr("d" + strings.Repeat(tt.char, model.MaxDescriptionLength-1)),
		})
		if err != nil {
			t.Fatalf("%s: create: %v", tt.name, err)
		}
		if got := testutil.Receive(t, sub); !reflect.DeepEqual(got.Task, created) {
			t.Errorf("%s: the task arrived changed", tt.name)
		}
	}
}

func TestPostgresBusPublishesEveryConcurrentCreateOnceAsCreated(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t))
	store := model.NewTasks(db)
	store.WriteWith(bus.Writer())

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
			got := testutil.Receive(t, subs[u])
			if got.Kind != model.ChangeCreated || !reflect.DeepEqual(got.Task, byID[got.Task.ID]) {
				t.Fatalf("user %d: got %s %+v, want CREATED of one of its tasks not yet seen", u, got.Kind, got.Task)
			}
			delete(byID, got.Task.ID)
		}
	}
}

func TestPostgresBusPublishesEachDeletedTaskInIDOrder(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t))
	store := model.NewTasks(db)
	store.WriteWith(bus.Writer())
	ctx := testutil.AsUser("alice")
	sub, _ := bus.Subscribe(ctx)
	if _, err := store.Create(ctx, model.CreateTaskInput{Title: "t"}); err != nil {
		t.Fatal(err)
	}
	testutil.Receive(t, sub)

	// deleteCompletedTasks sends one DELETED per task, in one statement.
	for _, title := range []string{"a", "b", "c"} {
		if _, err := store.Create(ctx, model.CreateTaskInput{Title: title, Completed: testutil.Ptr(true)}); err != nil {
			t.Fatal(err)
		}
	}
	deleted, err := store.DeleteCompleted(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"a", "b", "c"} {
		if got := testutil.Receive(t, sub); got.Kind != model.ChangeCreated || got.Task.Title != title {
			t.Fatalf("got %s %q, want CREATED %q", got.Kind, got.Task.Title, title)
		}
	}
	for _, d := range deleted {
		if got := testutil.Receive(t, sub); got.Kind != model.ChangeDeleted || !reflect.DeepEqual(got.Task, d) {
			t.Fatalf("got %s %+v, want DELETED %+v", got.Kind, got.Task, d)
		}
	}
}

func TestPostgresBusListensOnlyWhileItHasSubscribers(t *testing.T) {
	testutil.NewDB(t, testutil.Postgres) // skips without PostgreSQL
	const linger = 300 * time.Millisecond
	channel := uniqueChannel(t)
	bus := newPostgresBus(t, channel, func(p *postgres.Bus) { p.Linger = linger })

	// Start's check of the URL lingers like a last subscriber, then goes:
	// with no subscriber, the bus has no connection at all.
	listenBackends(t, bus, 0)
	if bus.Listening() {
		t.Fatal("the bus says it listens with no connection")
	}

	subscribe := func(user string) (*events.Subscription, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(testutil.AsUser(user))
		sub, err := bus.Subscribe(ctx)
		if err != nil {
			t.Fatalf("subscribe %s: %v", user, err)
		}
		return sub, cancel
	}
	onlyBackend := func(what string) testutil.Backend {
		t.Helper()
		backends := testutil.BusBackends(t, bus)
		if len(backends) != 1 {
			t.Fatalf("%s: the bus has %d sessions, want 1: %+v", what, len(backends), backends)
		}
		for _, b := range backends {
			return b
		}
		panic("unreachable")
	}

	// The first subscriber opens LISTEN, in place when Subscribe returns.
	alice, leaveAlice := subscribe("alice")
	first := onlyBackend("the first subscriber")
	if first.Query != `LISTEN "`+channel+`"` {
		t.Fatalf("the bus's session last ran %q, want LISTEN", first.Query)
	}
	// Others share it.
	bob, leaveBob := subscribe("bob")
	if b := onlyBackend("a second subscriber"); b.PID != first.PID {
		t.Fatalf("a second subscriber opened session %d beside %d", b.PID, first.PID)
	}
	leaveAlice()
	testutil.Ended(t, alice)
	time.Sleep(2 * linger)
	if b := onlyBackend("one subscriber left"); b.PID != first.PID {
		t.Fatalf("the connection changed to %d while bob was subscribed", b.PID)
	}
	// The last one leaves: LISTEN lingers, then closes.
	leaveBob()
	testutil.Ended(t, bob)
	left := time.Now()
	onlyBackend("just after the last subscriber left")
	listenBackends(t, bus, 0)
	t.Logf("LISTEN closed %v after the last subscriber left (Linger %v)", time.Since(left).Round(time.Millisecond), linger)
	if since := time.Since(left); since < linger {
		t.Errorf("LISTEN closed %v after the last subscriber left, before its linger of %v", since, linger)
	}

	// A subscriber that comes back within the linger finds it open.
	carol, leaveCarol := subscribe("carol")
	again := onlyBackend("a new first subscriber")
	leaveCarol()
	testutil.Ended(t, carol)
	time.Sleep(linger / 3)
	_, leaveCarol = subscribe("carol")
	defer leaveCarol()
	if b := onlyBackend("a subscriber back within the linger"); b.PID != again.PID {
		t.Fatalf("a subscriber back within the linger opened session %d instead of keeping %d", b.PID, again.PID)
	}
}

func TestPostgresBusSubscribeReturnsOnceLISTENIsInPlace(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t), func(p *postgres.Bus) { p.Linger = 20 * time.Millisecond })
	store := model.NewTasks(db)
	store.WriteWith(bus.Writer())
	// Each round opens LISTEN afresh and commits a change the moment
	// Subscribe returns: it must arrive.
	for round := range 5 {
		listenBackends(t, bus, 0)
		ctx, cancel := context.WithCancel(testutil.AsUser("alice"))
		sub, err := bus.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		created, err := store.Create(ctx, model.CreateTaskInput{Title: fmt.Sprintf("round %d", round)})
		if err != nil {
			t.Fatal(err)
		}
		if got := testutil.Receive(t, sub); got.Task.ID != created.ID {
			t.Fatalf("round %d: got task %d, want %d, committed just after Subscribe returned", round, got.Task.ID, created.ID)
		}
		cancel()
	}
}

func TestPostgresBusEndsSubscriptionsWithEventsMissedWhenLISTENIsLost(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t), func(p *postgres.Bus) { p.Linger = 100 * time.Millisecond })
	store := model.NewTasks(db)
	store.WriteWith(bus.Writer())
	alice, _ := bus.Subscribe(testutil.AsUser("alice"))
	bob, _ := bus.Subscribe(testutil.AsUser("bob"))

	// What a database restart or a suspending compute does to the
	// listener, to it alone: the shared test database stays up.
	if n := testutil.TerminateBus(t, bus); n != 1 {
		t.Fatalf("terminated %d sessions of the bus, want its one LISTEN", n)
	}
	for name, sub := range map[string]*events.Subscription{"alice": alice, "bob": bob} {
		err := testutil.Ended(t, sub)
		if want := "events missed: the server lost its connection to the change stream — refetch and resubscribe"; model.ErrorCode(err) != model.EEVENTSMISSED || err.Error() != want {
			t.Fatalf("%s's subscription ended with %v, want the server's EEVENTSMISSED %q", name, err, want)
		}
	}
	if n := bus.Subscribers(); n != 0 {
		t.Fatalf("%d subscriptions still open after LISTEN was lost", n)
	}

	// Nothing reconnects by itself: that would wake a database that just
	// suspended.
	const quiet = 3 * time.Second
	reconnects := 0
	for deadline := time.Now().Add(quiet); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(testutil.BusBackends(t, bus)) > 0 || bus.Listening() {
			reconnects++
		}
	}
	t.Logf("samples with a connection of the bus in the %v after LISTEN was lost, with no subscriber: %d", quiet, reconnects)
	if reconnects > 0 {
		t.Fatalf("the bus reconnected by itself after LISTEN was lost (%d of 30 samples)", reconnects)
	}

	// The next subscriber listens again, and hears.
	ctx := testutil.AsUser("alice")
	sub, err := bus.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listenBackends(t, bus, 1)
	created, err := store.Create(ctx, model.CreateTaskInput{Title: "after LISTEN was lost"})
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.Receive(t, sub); got.Task.ID != created.ID {
		t.Fatalf("got %+v, want the task made after the new subscription", got.Task)
	}
}

func TestPostgresBusKeepsAQuietConnection(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	bus := newPostgresBus(t, uniqueChannel(t), func(p *postgres.Bus) { p.HealthInterval = 20 * time.Millisecond })
	store := model.NewTasks(db)
	store.WriteWith(bus.Writer())
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
	if got := testutil.Receive(t, sub); got.Task.ID != created.ID {
		t.Fatalf("got %+v, want the task made after the pings", got.Task)
	}
}

func TestPostgresBusStartRefuses(t *testing.T) {
	testutil.NewDB(t, testutil.Postgres) // skips without PostgreSQL
	started := newPostgresBus(t, uniqueChannel(t))
	tests := []struct {
		name string
		bus  *postgres.Bus
		want string
	}{
		{"an unreachable database", &postgres.Bus{URL: "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}, "listen for task changes: connect"},
		{"a URL that does not parse", &postgres.Bus{URL: "postgres://%zz"}, "parse PostgreSQL URL"},
		{"a channel name PostgreSQL would cut", &postgres.Bus{URL: os.Getenv("TEST_DATABASE_URL"), Channel: strings.Repeat("c", 64)}, "longer than"},
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

// TestPostgresBusNeverLeavesASilentGap terminates one instance's LISTEN
// while another instance writes: each subscriber either receives every
// change, in commit order, or a run of them without a hole and then
// EVENTS_MISSED; a subscriber of an instance that kept LISTEN receives
// every change, and one that subscribes after the loss every change
// committed after it subscribed.
func TestPostgresBusNeverLeavesASilentGap(t *testing.T) {
	db := testutil.NewDB(t, testutil.Postgres)
	channel := uniqueChannel(t)
	losing, keeping, writing := newPostgresBus(t, channel), newPostgresBus(t, channel), newPostgresBus(t, channel)
	writer := model.NewTasks(db)
	writer.WriteWith(writing.Writer())
	ctx := testutil.AsUser("alice")

	// outcome is what one subscriber read until its stream ended.
	type outcome struct {
		ids []int64
		err error
	}
	read := func(sub *events.Subscription) <-chan outcome {
		out := make(chan outcome, 1)
		go func() {
			var o outcome
			for c := range sub.Changes() {
				o.ids = append(o.ids, c.Task.ID)
			}
			o.err = sub.Err()
			out <- o
		}()
		return out
	}
	subCtx, endSubs := context.WithCancel(ctx)
	defer endSubs()
	type subscriber struct {
		name string
		out  <-chan outcome
		// from is how many creates were acknowledged when it subscribed.
		from int
	}
	var subs []subscriber
	for i := range 3 {
		sub, err := losing.Subscribe(subCtx)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, subscriber{name: fmt.Sprintf("subscriber %d of the instance that loses LISTEN", i), out: read(sub)})
	}
	sub, err := keeping.Subscribe(subCtx)
	if err != nil {
		t.Fatal(err)
	}
	subs = append(subs, subscriber{name: "the subscriber of the instance that keeps LISTEN", out: read(sub)})

	// One writer, one create at a time: commit order is id order.
	const creates, terminateAt = 300, 100
	var (
		mu  sync.Mutex
		ids []int64
	)
	acked := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }
	writerDone := make(chan error, 1)
	go func() {
		for i := range creates {
			task, err := writer.Create(ctx, model.CreateTaskInput{Title: fmt.Sprintf("task %d", i)})
			if err != nil {
				writerDone <- err
				return
			}
			mu.Lock()
			ids = append(ids, task.ID)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		writerDone <- nil
	}()
	testutil.WaitFor(t, "the first creates", func() bool { return acked() >= terminateAt })
	if n := testutil.TerminateBus(t, losing); n != 1 {
		t.Fatalf("terminated %d sessions of the losing instance, want its LISTEN", n)
	}
	testutil.WaitFor(t, "the losing instance to notice", func() bool { return losing.Subscribers() == 0 })
	// A subscriber after the loss, while the writer goes on.
	late, err := losing.Subscribe(subCtx)
	if err != nil {
		t.Fatal(err)
	}
	subs = append(subs, subscriber{name: "a subscriber of the losing instance after the loss", out: read(late), from: acked()})
	if err := <-writerDone; err != nil {
		t.Fatalf("create: %v", err)
	}
	if acked() <= subs[len(subs)-1].from {
		t.Fatal("the writer finished before the late subscriber could hear anything")
	}
	// Every change is out; the open streams end with the context.
	time.Sleep(500 * time.Millisecond)
	endSubs()

	missedCount, completeCount := 0, 0
	for _, s := range subs {
		var o outcome
		select {
		case o = <-s.out:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the stream did not end", s.name)
		}
		switch {
		case model.ErrorCode(o.err) == model.EEVENTSMISSED:
			missedCount++
		case o.err == nil:
			completeCount++
		default:
			t.Fatalf("%s: ended with %v", s.name, o.err)
		}
		// What it received is a run of the commits without a hole: from
		// the first commit (or, for the late one, from no later than its
		// subscription) to the last, unless EVENTS_MISSED cut it short.
		start := slices.Index(ids, firstOr(o.ids, -1))
		if len(o.ids) > 0 && (start < 0 || !slices.Equal(o.ids, ids[start:min(start+len(o.ids), len(ids))])) {
			t.Fatalf("%s: received %d changes with a hole or out of order", s.name, len(o.ids))
		}
		if start > s.from || (start < 0 && o.err == nil) {
			t.Fatalf("%s: missed the changes committed after it subscribed (the first it got was commit %d of %d, it subscribed after %d)",
				s.name, start, len(ids), s.from)
		}
		if o.err == nil && start+len(o.ids) != len(ids) {
			t.Fatalf("%s: received %d of the %d changes after its first, without EVENTS_MISSED", s.name, len(o.ids), len(ids)-start)
		}
		t.Logf("%s: %d changes in order, then %v", s.name, len(o.ids), o.err)
	}
	if missedCount != 3 || completeCount != 2 {
		t.Fatalf("%d subscriptions ended with EVENTS_MISSED and %d got every change, want 3 and 2", missedCount, completeCount)
	}
}

// firstOr returns the first of s, or def when s is empty.
func firstOr[T any](s []T, def T) T {
	if len(s) == 0 {
		return def
	}
	return s[0]
}
