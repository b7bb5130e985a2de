package graphqlws_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/coder/websocket"

	"github.com/taskql/server/graphqlws"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil/gqlws"
)

// timeout bounds every wait for something that should happen.
const timeout = 10 * time.Second

// goodToken is the one token the tests' Authenticate accepts.
const goodToken = "good-token"

// newServer serves t, with an Authenticate that accepts "Bearer
// good-token" alone and records every value it is given, over gqlgen's
// schema-less test executor: the protocol, not the application.
func newServer(t *testing.T, tr *graphqlws.Transport) (url string, seen <-chan string) {
	t.Helper()
	values := make(chan string, 16)
	tr.Authenticate = func(ctx context.Context, authorization string) (model.Viewer, error) {
		values <- authorization
		if authorization != "Bearer "+goodToken {
			return model.Viewer{}, errors.New("bad token")
		}
		return model.Viewer{ID: "alice"}, nil
	}
	h := testserver.New()
	h.AddTransport(tr)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, values
}

func dial(t *testing.T, url string) *gqlws.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := gqlws.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// TestCloseCodesFollowTheProtocolNotGqlgen pins what gqlgen's transport
// gets wrong and this package exists for: auth failures close 4403 with
// UNAUTHENTICATED (never 1000), a subscribe before connection_ack 4401
// (not 1002), and the protocol's other codes.
func TestCloseCodesFollowTheProtocolNotGqlgen(t *testing.T) {
	url, _ := newServer(t, &graphqlws.Transport{InitTimeout: 200 * time.Millisecond})
	tests := []struct {
		name   string
		send   []string
		code   int
		reason string
	}{
		{"a connection_init without a token", []string{`{"type":"connection_init"}`}, 4403, "UNAUTHENTICATED: missing token"},
		{"a connection_init with a bad token", []string{`{"type":"connection_init","payload":{"Authorization":"Bearer nope"}}`}, 4403, "UNAUTHENTICATED: invalid token"},
		{"a payload that is not an object", []string{`{"type":"connection_init","payload":["Bearer good-token"]}`}, 4403, "UNAUTHENTICATED"},
		{"a subscribe before connection_ack", []string{`{"type":"subscribe","id":"1","payload":{"query":"subscription { name }"}}`}, 4401, "Unauthorized"},
		{"no connection_init in time", nil, 4408, "Connection initialisation timeout"},
		{"a message that is not JSON", []string{`{nope`}, 4400, "Invalid message received"},
		{"an unknown message type", []string{`{"type":"start","id":"1"}`}, 4400, "Invalid message received"},
		{"a second connection_init", []string{`{"type":"connection_init","payload":{"token":"good-token"}}`, `{"type":"connection_init"}`}, 4429, "Too many initialisation requests"},
		{"a subscribe without an id", []string{`{"type":"connection_init","payload":{"token":"good-token"}}`,
			`{"type":"subscribe","payload":{"query":"{ name }"}}`}, 4400, "Invalid message received"},
		{"two operations with one id", []string{`{"type":"connection_init","payload":{"token":"good-token"}}`,
			`{"type":"subscribe","id":"x","payload":{"query":"subscription { name }"}}`,
			`{"type":"subscribe","id":"x","payload":{"query":"subscription { name }"}}`}, 4409, "Subscriber for x already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			for _, s := range tt.send {
				if err := c.SendRaw(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			gqlws.WantClosed(t, c, tt.code, tt.reason)
		})
	}

	t.Run("the old graphql-ws subprotocol", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1),
			&websocket.DialOptions{Subprotocols: []string{"graphql-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		_, _, err = ws.Read(ctx)
		if code := websocket.CloseStatus(err); code != 4406 {
			t.Fatalf("want close 4406, got %v", err)
		}
	})
}

// TestTheTokenReachesAuthenticateAsAnAuthorizationValue pins where a
// connection_init payload may carry the token, and that Authenticate (the
// server's one token path) is given it as "Bearer <token>" or as the
// client wrote it, never parsed by this package.
func TestTheTokenReachesAuthenticateAsAnAuthorizationValue(t *testing.T) {
	url, seen := newServer(t, &graphqlws.Transport{})
	tests := []struct {
		name    string
		payload map[string]any
		want    string
	}{
		{"Authorization", map[string]any{"Authorization": "Bearer " + goodToken}, "Bearer " + goodToken},
		{"authorization, as written", map[string]any{"authorization": "bearer " + goodToken}, "bearer " + goodToken},
		{"a bare token under token", map[string]any{"token": goodToken}, "Bearer " + goodToken},
		{"Bearer <token> under token", map[string]any{"token": " Bearer " + goodToken + " "}, "Bearer " + goodToken},
		{"headers.Authorization", map[string]any{"headers": map[string]any{"Authorization": "Bearer " + goodToken}}, "Bearer " + goodToken},
		{"Authorization before token", map[string]any{"token": "other", "Authorization": "Bearer " + goodToken}, "Bearer " + goodToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, url)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			err := c.Init(ctx, tt.payload)
			if got := <-seen; got != tt.want {
				t.Fatalf("Authenticate got %q, want %q", got, tt.want)
			}
			if tt.want == "Bearer "+goodToken && err != nil {
				t.Fatalf("connection_init: %v", err)
			}
		})
	}
}

// TestAnOperationRunsAfterConnectionAck runs a query and a subscription
// through the executor: next, then complete.
func TestAnOperationRunsAfterConnectionAck(t *testing.T) {
	url, _ := newServer(t, &graphqlws.Transport{})
	c := dial(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Init(ctx, map[string]any{"token": goodToken}); err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, "q", `{ name }`, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"next", "complete"} {
		msg, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if msg.ID != "q" || msg.Type != want {
			t.Fatalf("want %s of q, got %s %s %s", want, msg.ID, msg.Type, msg.Payload)
		}
		if want == "next" {
			var body struct{ Data struct{ Name string } }
			if json.Unmarshal(msg.Payload, &body) != nil || body.Data.Name != "test" {
				t.Fatalf("next: %s", msg.Payload)
			}
		}
	}
}

// TestShutdownClosesWithGoingAway pins 1001 on shutdown, which clients
// take as "reconnect", and that a connection opened during it is turned
// away.
func TestShutdownClosesWithGoingAway(t *testing.T) {
	conns := &graphqlws.Connections{}
	url, _ := newServer(t, &graphqlws.Transport{Connections: conns})
	c := dial(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Init(ctx, map[string]any{"token": goodToken}); err != nil {
		t.Fatal(err)
	}
	if n := conns.Open(); n != 1 {
		t.Fatalf("Open() = %d with one connection, want 1", n)
	}
	done := make(chan error, 1)
	go func() { done <- conns.Shutdown(ctx) }()
	gqlws.WantClosed(t, c, 1001, "server shutting down")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	gqlws.WantClosed(t, dial(t, url), 1001, "server shutting down")
}
