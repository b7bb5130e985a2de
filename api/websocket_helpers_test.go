package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/taskql/server/api"
	"github.com/taskql/server/events"
	"github.com/taskql/server/graphqlws"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
	"github.com/taskql/server/testutil/gqlws"
)

// wsTimeout bounds every wait of the websocket tests for something that
// should happen: generous, since a loaded CI machine is slow, and never
// reached when the server behaves.
const wsTimeout = 10 * time.Second

// taskChangedSubscription selects every field of the events.
const taskChangedSubscription = `subscription { taskChanged { kind task { ` + taskFields + ` } } }`

// change is a TaskChange as the API sends it.
type change struct {
	Kind string `json:"kind"`
	Task task   `json:"task"`
}

// subServer is a test server with the event bus the server uses on its
// dialect and its websockets tracked.
type subServer struct {
	*testServer
	Bus     events.Bus
	Sockets *graphqlws.Connections
}

// newSubscriptionServer starts api.New on a fresh database of dialect d,
// with an event bus; configure, if given, adjusts the configuration.
func newSubscriptionServer(t *testing.T, d testutil.Dialect, configure ...func(*api.Config)) *subServer {
	t.Helper()
	db := testutil.NewDB(t, d)
	tasks := model.NewTasks(db)
	s := &subServer{Bus: testutil.NewBus(t, db, tasks), Sockets: &graphqlws.Connections{}}
	s.testServer = newServerWith(t, db, tasks, append([]func(*api.Config){func(cfg *api.Config) {
		cfg.Changes = s.Bus
		cfg.Websockets = s.Sockets
		// Tests make more mutations in a burst than a user would.
		cfg.Limits.CostBudget = 1 << 40
	}}, configure...)...)
	return s
}

// waitSubscribers waits until the bus has n subscriptions: a subscribe
// message is not acknowledged, so this is how a test knows that changes
// it makes next will be delivered.
func (s *subServer) waitSubscribers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(wsTimeout)
	for s.Bus.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("want %d subscriptions, the bus has %d", n, s.Bus.Subscribers())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialWS opens a websocket to the server, failing the test if it cannot.
func dialWS(t *testing.T, srv *subServer, header http.Header) *gqlws.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	c, err := gqlws.Dial(ctx, srv.URL+"/graphql", header)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// subscribe opens a websocket as the user of token and starts the
// taskChanged subscription as operation "1". Wait with waitSubscribers
// before making changes the subscription must see.
func subscribe(t *testing.T, srv *subServer, token string) *gqlws.Conn {
	t.Helper()
	c := dialWS(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	if err := c.Init(ctx, map[string]any{"Authorization": "Bearer " + token}); err != nil {
		t.Fatalf("connection_init: %v", err)
	}
	if err := c.Subscribe(ctx, "1", taskChangedSubscription, nil); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return c
}

// nextChangeOf reads the next message of c, which must be an event of
// operation "1".
func nextChangeOf(ctx context.Context, c *gqlws.Conn) (change, error) {
	msg, err := c.Next(ctx)
	if err != nil {
		return change{}, err
	}
	if msg.Type != "next" || msg.ID != "1" {
		return change{}, errors.New("want next of operation 1, got " + msg.Type + " " + string(msg.Payload))
	}
	var body struct {
		Data   struct{ TaskChanged change }
		Errors []gqlError
	}
	if err := json.Unmarshal(msg.Payload, &body); err != nil {
		return change{}, err
	}
	if len(body.Errors) > 0 {
		return change{}, errors.New("event with errors: " + string(msg.Payload))
	}
	return body.Data.TaskChanged, nil
}

// nextChange reads the next event of operation "1" on c, failing the test
// when none comes within wsTimeout.
func nextChange(t *testing.T, c *gqlws.Conn) change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	got, err := nextChangeOf(ctx, c)
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return got
}

// nextMessage reads the next message on c, failing the test when none
// comes within wsTimeout.
func nextMessage(t *testing.T, c *gqlws.Conn) gqlws.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
	defer cancel()
	msg, err := c.Next(ctx)
	if err != nil {
		t.Fatalf("next message: %v", err)
	}
	return msg
}

// initPayload is one way a connection_init message carries a token.
type initPayload struct {
	name    string
	payload map[string]any
}

// initPayloads are the ways connection_init may carry token that the
// server accepts.
func initPayloads(token string) []initPayload {
	return []initPayload{
		{"Authorization", map[string]any{"Authorization": "Bearer " + token}},
		{"authorization, any case of Bearer", map[string]any{"authorization": "bearer " + token}},
		{"token", map[string]any{"token": token}},
		{"headers.Authorization", map[string]any{"headers": map[string]any{"Authorization": "Bearer " + token}}},
	}
}
