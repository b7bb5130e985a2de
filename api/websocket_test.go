package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/dialect"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/events"
	"github.com/taskql/server/graphqlws"
	"github.com/taskql/server/model"
	"github.com/taskql/server/postgres"
	"github.com/taskql/server/testutil"
	"github.com/taskql/server/testutil/gqlws"
)

func TestTaskChangedDeliversTheViewersChangesInCommitOrder(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newSubscriptionServer(t, d)
		alice, bob := mint(t, "alice"), mint(t, "bob")
		aliceWS, bobWS := subscribe(t, srv, alice), subscribe(t, srv, bob)
		srv.waitSubscribers(t, 2)

		var want []change
		one := srv.createTask(t, alice, "one", false)
		want = append(want, change{"CREATED", one})
		var upd struct{ UpdateTask task }
		srv.gql(t, alice, `mutation($id: ID!) { updateTask(id: $id, input: {title: "one!", description: "more"}) { `+taskFields+` } }`,
			map[string]any{"id": one.ID}).mustOK(t, &upd)
		want = append(want, change{"UPDATED", upd.UpdateTask})
		var tog struct{ ToggleTask task }
		srv.gql(t, alice, `mutation($id: ID!) { toggleTask(id: $id) { `+taskFields+` } }`,
			map[string]any{"id": one.ID}).mustOK(t, &tog)
		want = append(want, change{"UPDATED", tog.ToggleTask})
		two := srv.createTask(t, alice, "two", true)
		want = append(want, change{"CREATED", two})
		var dc struct{ DeleteCompletedTasks []string }
		srv.gql(t, alice, `mutation { deleteCompletedTasks }`, nil).mustOK(t, &dc)
		// One DELETED per task, in id order, each as it was.
		want = append(want, change{"DELETED", tog.ToggleTask}, change{"DELETED", two})
		three := srv.createTask(t, alice, "three", false)
		want = append(want, change{"CREATED", three})
		var del struct{ DeleteTask task }
		srv.gql(t, alice, `mutation($id: ID!) { deleteTask(id: $id) { `+taskFields+` } }`,
			map[string]any{"id": three.ID}).mustOK(t, &del)
		want = append(want, change{"DELETED", three})

		for i, w := range want {
			got := nextChange(t, aliceWS)
			if got.Kind != w.Kind || !equalTask(got.Task, w.Task) {
				t.Fatalf("event %d: got %s %+v, want %s %+v (what the mutation returned)", i, got.Kind, got.Task, w.Kind, w.Task)
			}
			if !timeFormat.MatchString(got.Task.CreatedAt) || !timeFormat.MatchString(got.Task.UpdatedAt) {
				t.Errorf("event %d: times %q, %q are not RFC 3339 UTC with microseconds", i, got.Task.CreatedAt, got.Task.UpdatedAt)
			}
		}

		// Bob heard none of it: the first event on his subscription is
		// his own task, made after all of Alice's.
		bobs := srv.createTask(t, bob, "bob's", false)
		if got := nextChange(t, bobWS); got.Task.ID != bobs.ID || got.Kind != "CREATED" {
			t.Fatalf("bob's first event: got %s %+v, want CREATED of his task %s", got.Kind, got.Task, bobs.ID)
		}
		// Nor does Alice hear Bob's.
		last := srv.createTask(t, alice, "last", false)
		if got := nextChange(t, aliceWS); got.Task.ID != last.ID {
			t.Fatalf("alice's next event: got %+v, want her task %s (not bob's %s)", got.Task, last.ID, bobs.ID)
		}
	})
}

func TestTaskChangedOrdersConcurrentChangesAsTheyCommit(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newSubscriptionServer(t, d)
		alice := mint(t, "alice")
		ws := subscribe(t, srv, alice)
		srv.waitSubscribers(t, 1)
		target := srv.createTask(t, alice, "flip me", false)
		if got := nextChange(t, ws); got.Task.ID != target.ID {
			t.Fatalf("want the CREATED event of %s, got %+v", target.ID, got)
		}

		// Each toggle flips what the one before it committed, so in
		// commit order the events alternate: an event out of order shows
		// as two equal values in a row.
		const writers, each = 8, 8
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					srv.gql(t, alice, `mutation($id: ID!) { toggleTask(id: $id) { id } }`, map[string]any{"id": target.ID}).mustOK(t, nil)
				}
			}()
		}
		wg.Wait()
		for i := range writers * each {
			got := nextChange(t, ws)
			if want := i%2 == 0; got.Kind != "UPDATED" || got.Task.Completed != want {
				t.Fatalf("event %d of %d: got %s completed=%v, want UPDATED completed=%v: events left commit order",
					i, writers*each, got.Kind, got.Task.Completed, want)
			}
		}
	})
}

func TestTaskChangedSendsNothingForAFailedMutation(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newSubscriptionServer(t, d)
		failOnBoom(t, srv)
		alice, bob := mint(t, "alice"), mint(t, "bob")
		existing := srv.createTask(t, alice, "existing", false)
		bobs := srv.createTask(t, bob, "bob's", false)
		ws := subscribe(t, srv, alice)
		srv.waitSubscribers(t, 1)

		failures := []struct {
			name  string
			query string
			vars  map[string]any
			code  string
		}{
			{"an empty title", `mutation { createTask(input: {title: "  "}) { id } }`, nil, api.CodeBadUserInput},
			{"a malformed id", `mutation { deleteTask(id: "abc") { id } }`, nil, api.CodeBadUserInput},
			{"a missing task", `mutation { updateTask(id: "999999", input: {title: "x"}) { id } }`, nil, api.CodeNotFound},
			{"another user's task", `mutation($id: ID!) { toggleTask(id: $id) { id } }`, map[string]any{"id": bobs.ID}, api.CodeNotFound},
			{"an insert the database refuses", `mutation { createTask(input: {title: "boom"}) { id } }`, nil, api.CodeInternal},
			{"an update the database refuses", `mutation($id: ID!) { updateTask(id: $id, input: {title: "boom"}) { id } }`, map[string]any{"id": existing.ID}, api.CodeInternal},
		}
		for _, f := range failures {
			srv.gql(t, alice, f.query, f.vars).mustError(t, f.code)
		}
		// Succeeds, but deletes nothing: nothing to tell.
		srv.gql(t, alice, `mutation { deleteCompletedTasks }`, nil).mustOK(t, nil)

		after := srv.createTask(t, alice, "after", false)
		if got := nextChange(t, ws); got.Task.ID != after.ID || got.Kind != "CREATED" {
			t.Fatalf("the first event after %d failed mutations: got %s %+v, want CREATED %s", len(failures), got.Kind, got.Task, after.ID)
		}
		var data struct{ Task *task }
		srv.gql(t, alice, `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": existing.ID}).mustOK(t, &data)
		if data.Task == nil || data.Task.Title != "existing" {
			t.Fatalf("the refused update changed the task: %+v", data.Task)
		}
	})
}

// failOnBoom makes the database refuse a task titled "boom". On
// PostgreSQL the refusal comes at COMMIT, after the mutation has sent its
// NOTIFY: the test then shows that the notification dies with the
// transaction.
func failOnBoom(t *testing.T, srv *subServer) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER fail_boom_insert BEFORE INSERT ON task WHEN NEW.title = 'boom'
			BEGIN SELECT RAISE(ABORT, 'boom'); END`,
		`CREATE TRIGGER fail_boom_update BEFORE UPDATE ON task WHEN NEW.title = 'boom'
			BEGIN SELECT RAISE(ABORT, 'boom'); END`}
	if srv.DB.Dialect().Name() == dialect.PG {
		stmts = []string{`CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$`,
			`CREATE CONSTRAINT TRIGGER fail_boom AFTER INSERT OR UPDATE ON task
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.title = 'boom') EXECUTE FUNCTION fail_boom()`}
	}
	for _, s := range stmts {
		if _, err := srv.DB.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("create the failing trigger: %v", err)
		}
	}
}

func TestWebsocketAuthentication(t *testing.T) {
	srv := newSubscriptionServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	refused := []struct {
		name    string
		payload any
		code    int
		reason  string
	}{
		{"no payload", nil, 4403, "UNAUTHENTICATED"},
		{"a payload without a token", map[string]any{"foo": "bar"}, 4403, "UNAUTHENTICATED: missing token"},
		{"a malformed token", map[string]any{"Authorization": "Bearer not-a-jwt"}, 4403, "UNAUTHENTICATED: invalid token"},
		{"a token of another key", map[string]any{"Authorization": "Bearer " + mintWith(t, []byte("another-secret-of-at-least-32-bytes!"), "alice")}, 4403, "UNAUTHENTICATED: invalid token"},
		{"an expired token", map[string]any{"Authorization": "Bearer " + mint(t, "alice", func(c *auth.MintClaims) { c.TTL = -time.Hour })}, 4403, "UNAUTHENTICATED: invalid token"},
		{"a token without the Bearer scheme", map[string]any{"Authorization": alice}, 4403, "UNAUTHENTICATED: invalid token"},
		{"a payload that is not an object", []string{"Bearer " + alice}, 4403, "UNAUTHENTICATED"},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			c := dialWS(t, srv, nil)
			ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
			defer cancel()
			msg := gqlws.Message{Type: "connection_init"}
			if tt.payload != nil {
				msg.Payload = json.RawMessage(mustJSON(t, tt.payload))
			}
			if err := c.Send(ctx, msg); err != nil {
				t.Fatal(err)
			}
			gqlws.WantClosed(t, c, tt.code, tt.reason)
		})
	}

	t.Run("closes a subscribe before connection_ack with 4401", func(t *testing.T) {
		c := dialWS(t, srv, nil)
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		if err := c.Subscribe(ctx, "1", taskChangedSubscription, nil); err != nil {
			t.Fatal(err)
		}
		gqlws.WantClosed(t, c, 4401, "Unauthorized")
	})

	for _, tt := range initPayloads(alice) {
		t.Run("accepts the token under "+tt.name, func(t *testing.T) {
			c := dialWS(t, srv, nil)
			ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
			defer cancel()
			if err := c.Init(ctx, tt.payload); err != nil {
				t.Fatalf("connection_init: %v", err)
			}
			if err := c.Subscribe(ctx, "q", `{ me { id } }`, nil); err != nil {
				t.Fatal(err)
			}
			msg := nextMessage(t, c)
			if msg.Type != "next" || !strings.Contains(string(msg.Payload), `"id":"alice"`) {
				t.Fatalf("want next with me.id alice, got %s %s", msg.Type, msg.Payload)
			}
		})
	}

	t.Run("accepts the upgrade request's Authorization header", func(t *testing.T) {
		c := dialWS(t, srv, http.Header{"Authorization": {"Bearer " + alice}})
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		if err := c.Init(ctx, nil); err != nil {
			t.Fatalf("connection_init: %v", err)
		}
	})

	t.Run("refuses an upgrade whose Authorization header fails with 401", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
		defer cancel()
		c, err := gqlws.Dial(ctx, srv.URL+"/graphql", http.Header{"Authorization": {"Bearer nope"}})
		if err == nil {
			c.CloseNow()
			t.Fatal("the upgrade succeeded")
		}
		if c.Response == nil || c.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("want 401, got %v", err)
		}
	})
}

func TestWebsocketClosesWhenTheTokenExpires(t *testing.T) {
	srv := newSubscriptionServer(t, testutil.SQLite)
	// exp has a resolution of seconds: this token lasts one to two.
	token := mint(t, "alice", func(c *auth.MintClaims) { c.TTL = 2 * time.Second })
	ws := subscribe(t, srv, token)
	srv.waitSubscribers(t, 1)
	created := srv.createTask(t, mint(t, "alice"), "before expiry", false)
	if got := nextChange(t, ws); got.Task.ID != created.ID {
		t.Fatalf("want the event of %s before expiry, got %+v", created.ID, got)
	}
	start := time.Now()
	gqlws.WantClosed(t, ws, 4403, "UNAUTHENTICATED: token expired")
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("closed %v after the event; the token expired within 2s", waited)
	}
	srv.waitSubscribers(t, 0)
}

// TestWebsocketWaitsForConnectionInitAsLongAsConfigured checks that
// api.Config reaches the protocol (graphqlws, which tests the protocol's
// other close codes itself).
func TestWebsocketWaitsForConnectionInitAsLongAsConfigured(t *testing.T) {
	srv := newSubscriptionServer(t, testutil.SQLite, func(cfg *api.Config) {
		cfg.WebsocketInitTimeout = 200 * time.Millisecond
	})
	start := time.Now()
	gqlws.WantClosed(t, dialWS(t, srv, nil), 4408, "Connection initialisation timeout")
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("closed after %v, configured 200ms (the default is 10s)", waited)
	}
}

func TestWebsocketRunsQueriesAndMutations(t *testing.T) {
	srv := newSubscriptionServer(t, testutil.SQLite)
	c := dialWS(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if err := c.Init(ctx, map[string]any{"Authorization": "Bearer " + mint(t, "alice")}); err != nil {
		t.Fatal(err)
	}

	if err := c.Subscribe(ctx, "m", `mutation { createTask(input: {title: "over ws"}) { title } }`, nil); err != nil {
		t.Fatal(err)
	}
	if msg := nextMessage(t, c); msg.ID != "m" || msg.Type != "next" || !strings.Contains(string(msg.Payload), `"title":"over ws"`) {
		t.Fatalf("want next with the created task, got %s %s", msg.Type, msg.Payload)
	}
	if msg := nextMessage(t, c); msg.ID != "m" || msg.Type != "complete" {
		t.Fatalf("want complete, got %s %s", msg.Type, msg.Payload)
	}

	// A document that does not validate ends its operation with error.
	if err := c.Subscribe(ctx, "bad", `{ nope }`, nil); err != nil {
		t.Fatal(err)
	}
	msg := nextMessage(t, c)
	var errs []gqlError
	if msg.ID != "bad" || msg.Type != "error" || json.Unmarshal(msg.Payload, &errs) != nil || len(errs) == 0 || errs[0].Code() != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("want error with GRAPHQL_VALIDATION_FAILED, got %s %s", msg.Type, msg.Payload)
	}

	// A failing field answers next with the error, then complete.
	if err := c.Subscribe(ctx, "nf", `mutation { deleteTask(id: "424242") { id } }`, nil); err != nil {
		t.Fatal(err)
	}
	msg = nextMessage(t, c)
	if msg.Type != "next" || !strings.Contains(string(msg.Payload), api.CodeNotFound) {
		t.Fatalf("want next with NOT_FOUND, got %s %s", msg.Type, msg.Payload)
	}
	nextMessage(t, c) // complete

	// complete from the client ends a subscription.
	if err := c.Subscribe(ctx, "1", taskChangedSubscription, nil); err != nil {
		t.Fatal(err)
	}
	srv.waitSubscribers(t, 1)
	if err := c.Send(ctx, gqlws.Message{ID: "1", Type: "complete"}); err != nil {
		t.Fatal(err)
	}
	srv.waitSubscribers(t, 0)
}

func TestSlowSubscriberEndsWithEventsMissed(t *testing.T) {
	db := testutil.NewDB(t, testutil.SQLite)
	tasks := model.NewTasks(db)
	bus := &events.Local{Hub: events.Hub{Buffer: 1}}
	tasks.WriteWith(bus.Writer())
	srv := &subServer{Bus: bus, Sockets: &graphqlws.Connections{}}
	srv.testServer = newServerWith(t, db, tasks, func(cfg *api.Config) { cfg.Changes = bus })
	ws := subscribe(t, srv, mint(t, "alice"))
	srv.waitSubscribers(t, 1)

	// Ten changes at once into a buffer of one: the subscriber falls
	// behind long before the last, usually at the second or the third
	// (the first may go straight to the reader, and a reader scheduled
	// often enough can take one or two more before the buffer fills).
	var changes []*model.TaskChange
	for i := range 10 {
		changes = append(changes, &model.TaskChange{Kind: model.ChangeCreated, Task: &model.Task{
			ID: int64(i + 1), UserID: "alice", Title: "t" + strconv.Itoa(i), CreatedAt: time.Now(), UpdatedAt: time.Now(),
		}})
	}
	bus.Deliver(changes)

	// What was delivered comes first, in order, then the error.
	for want := 1; ; want++ {
		msg := nextMessage(t, ws)
		if msg.Type == "next" {
			if !strings.Contains(string(msg.Payload), `"id":"`+strconv.Itoa(want)+`"`) || want >= len(changes) {
				t.Fatalf("event %d: got %s", want, msg.Payload)
			}
			continue
		}
		var errs []gqlError
		if msg.Type != "error" || msg.ID != "1" || json.Unmarshal(msg.Payload, &errs) != nil || len(errs) != 1 {
			t.Fatalf("want one error ending operation 1, got %s %s", msg.Type, msg.Payload)
		}
		if errs[0].Code() != api.CodeEventsMissed || errs[0].Message != "events missed: the client read too slowly, 2 events behind — refetch and resubscribe" {
			t.Fatalf("got error %+v", errs[0])
		}
		break
	}
	srv.waitSubscribers(t, 0)
}

func TestLostListenEndsSubscriptionsWithEventsMissed(t *testing.T) {
	srv := newSubscriptionServer(t, testutil.Postgres)
	token := mint(t, "alice")
	ws := subscribe(t, srv, token)
	srv.waitSubscribers(t, 1)

	// The database drops the LISTEN connection (a restart, a suspending
	// compute): changes committed meanwhile were never heard.
	if n := testutil.TerminateBus(t, srv.Bus.(*postgres.Bus)); n != 1 {
		t.Fatalf("terminated %d sessions of the bus, want its LISTEN", n)
	}
	msg := nextMessage(t, ws)
	var errs []gqlError
	if msg.Type != "error" || msg.ID != "1" || json.Unmarshal(msg.Payload, &errs) != nil || len(errs) != 1 {
		t.Fatalf("want one error ending operation 1, got %s %s", msg.Type, msg.Payload)
	}
	if errs[0].Code() != api.CodeEventsMissed || errs[0].Message != "events missed: the server lost its connection to the change stream — refetch and resubscribe" {
		t.Fatalf("got error %+v", errs[0])
	}
	srv.waitSubscribers(t, 0)

	// What a client does next: resubscribe on the same socket, which
	// listens again, and hear the next change.
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if err := ws.Subscribe(ctx, "2", taskChangedSubscription, nil); err != nil {
		t.Fatal(err)
	}
	srv.waitSubscribers(t, 1)
	created := srv.createTask(t, token, "after the resubscribe", false)
	msg = nextMessage(t, ws)
	if msg.Type != "next" || msg.ID != "2" || !strings.Contains(string(msg.Payload), `"id":"`+created.ID+`"`) {
		t.Fatalf("want the new task on operation 2, got %s %s %s", msg.ID, msg.Type, msg.Payload)
	}
}

func TestWebsocketDropsAPeerThatStopsAnsweringPings(t *testing.T) {
	srv := newSubscriptionServer(t, testutil.SQLite, func(cfg *api.Config) {
		cfg.WebsocketKeepAlive = 50 * time.Millisecond
	})
	live, dead := subscribe(t, srv, mint(t, "alice")), subscribe(t, srv, mint(t, "bob"))
	srv.waitSubscribers(t, 2)
	// A client answers pings only while it reads: dead stops reading,
	// live keeps at it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go live.Next(ctx)
	_ = dead
	srv.waitSubscribers(t, 1)
	if n := srv.Sockets.Open(); n != 1 {
		t.Fatalf("want the live websocket open alone, %d are", n)
	}
}

func TestWebsocketShutdownClosesConnectionsPromptly(t *testing.T) {
	srv := newSubscriptionServer(t, testutil.SQLite)
	var conns []*gqlws.Conn
	for _, user := range []string{"alice", "bob", "carol"} {
		conns = append(conns, subscribe(t, srv, mint(t, user)))
	}
	srv.waitSubscribers(t, len(conns))

	closed := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			for {
				_, err := c.Next(context.Background())
				if err != nil {
					closed <- err
					return
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if err := srv.Sockets.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (the websockets did not close before the deadline)", err)
	}
	for range conns {
		var c *gqlws.Closed
		if err := <-closed; !errors.As(err, &c) || c.Code != 1001 {
			t.Errorf("want close 1001 going away, got %v", err)
		}
	}
	srv.waitSubscribers(t, 0)

	// A websocket opened during shutdown is turned away at once.
	late := dialWS(t, srv, nil)
	gqlws.WantClosed(t, late, 1001, "server shutting down")
}

func TestWebsocketSubscriptionsAreCounted(t *testing.T) {
	m := api.NewMetrics(nil)
	srv := newSubscriptionServer(t, testutil.SQLite, func(cfg *api.Config) { cfg.Metrics = m })
	const gauge = "taskql_active_subscriptions"
	ws := subscribe(t, srv, mint(t, "alice"))
	srv.waitSubscribers(t, 1)
	if got := metricValue(srv.scrape(t, ""), gauge); got != "1" {
		t.Fatalf("%s = %q with one subscription open, want 1", gauge, got)
	}
	ws.CloseNow()
	srv.waitSubscribers(t, 0)
	deadline := time.Now().Add(wsTimeout)
	for metricValue(srv.scrape(t, ""), gauge) != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed %q after the websocket closed, want 0", gauge, metricValue(srv.scrape(t, ""), gauge))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
