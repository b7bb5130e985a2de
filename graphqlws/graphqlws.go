// Package graphqlws serves GraphQL over websockets with the
// graphql-transport-ws protocol (github.com/enisdenjo/graphql-ws,
// PROTOCOL.md), which Apollo Client's GraphQLWsLink and urql speak:
// subscriptions, and queries and mutations too, as those clients may send
// them. Transport is a gqlgen transport; package api mounts it.
//
// It is the server's own rather than gqlgen's transport.Websocket, which
// gets the protocol's close codes wrong where clients notice (CONTRACT
// §7): it closes with 1000 when a connection's context ends, and clients
// take 1000 for "done" and do not reconnect (the contract forbids it for
// an expired token, which must be 4403 so that the client reconnects with
// a fresh one); it answers a subscribe before connection_ack with 1002
// rather than 4401; and it cannot say why a subscription's stream ended
// (EVENTS_MISSED). The older subscriptions-transport-ws protocol,
// confusingly named "graphql-ws", is not served.
package graphqlws

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/taskql/server/model"
)

// Subprotocol is the websocket subprotocol the transport speaks.
const Subprotocol = "graphql-transport-ws"

// The close codes the transport sends: the protocol's, and the standard
// "going away" of a server shutting down. Clients retry after 1001 and
// 4403 (with connectionParams asked anew, so a fresh token), not after the
// codes that say the client is at fault.
const (
	closeGoingAway              = websocket.StatusGoingAway
	closeBadRequest             = websocket.StatusCode(4400)
	closeUnauthorized           = websocket.StatusCode(4401)
	closeForbidden              = websocket.StatusCode(4403)
	closeSubprotocolUnsupported = websocket.StatusCode(4406)
	closeInitTimeout            = websocket.StatusCode(4408)
	closeSubscriberExists       = websocket.StatusCode(4409)
	closeTooManyInits           = websocket.StatusCode(4429)
)

// Defaults of Transport's zero fields, and fixed bounds.
const (
	// DefaultKeepAlive is how often a connection is pinged when
	// Transport.KeepAlive is zero.
	DefaultKeepAlive = 15 * time.Second
	// DefaultInitTimeout is how long a connection may wait before its
	// connection_init when Transport.InitTimeout is zero.
	DefaultInitTimeout = 10 * time.Second
	// writeTimeout drops a peer that stopped reading: its socket
	// buffers are full and a write would otherwise wait forever.
	writeTimeout = 10 * time.Second
	// maxOperations bounds the operations one connection runs at once.
	maxOperations = 100
	// internalMessage is what a client is told when an error cannot
	// even be encoded: nothing of it.
	internalMessage = "internal server error"
)

// Transport serves graphql-transport-ws; it implements graphql.Transport.
// Every field but Authenticate may be left zero.
type Transport struct {
	// Authenticate verifies an Authorization value, "Bearer <token>",
	// found in a connection_init payload, and says whom it speaks for.
	// It is the server's token path, the same as for HTTP requests (api
	// passes its token cache), so the protocol knows nothing of tokens.
	// Nil refuses every token.
	Authenticate func(ctx context.Context, authorization string) (model.Viewer, error)
	// Accepted, when set, is told of each connection acknowledged, with
	// its viewer (api records the user for the access log).
	Accepted func(ctx context.Context, viewer model.Viewer)
	// CheckOrigin, when set, decides whether the upgrade request r may
	// open a websocket. When it may not, CheckOrigin has answered the
	// request (api answers 403 with a GraphQL error) and returns false.
	// The library's same-host rule is never applied: CheckOrigin is the
	// whole rule.
	CheckOrigin func(w http.ResponseWriter, r *http.Request) bool
	// Connections, when set, tracks the connections, so that a shutdown
	// can close them.
	Connections *Connections
	// KeepAlive is how often a connection is pinged; a peer that does not
	// answer within as long is dropped. Zero means DefaultKeepAlive.
	KeepAlive time.Duration
	// InitTimeout is how long a connection may wait before its
	// connection_init. Zero means DefaultInitTimeout.
	InitTimeout time.Duration
	// ReadLimit bounds one message from the client, in bytes. Zero means
	// the library's default, 32 KiB.
	ReadLimit int64
	// Logger receives why connections were refused or dropped; nil means
	// slog.Default().
	Logger *slog.Logger
	// RequestID, when set, returns the id of the upgrade request of ctx,
	// for the log.
	RequestID func(ctx context.Context) string
	// ErrorPresenter turns an error ending an operation into what the
	// client sees; nil means graphql.DefaultErrorPresenter.
	ErrorPresenter graphql.ErrorPresenterFunc
	// Recover turns a panic of an operation into an error (logging it);
	// nil means graphql.DefaultRecover.
	Recover graphql.RecoverFunc
	// SubscriptionStarted and SubscriptionEnded, when set, are called as
	// a subscription operation starts and ends (metrics).
	SubscriptionStarted, SubscriptionEnded func()
	// StreamEnd, when set, prepares the context of each operation and
	// returns what says, after its last result, why its stream ended:
	// an error is sent to the client as the operation's error message
	// rather than complete (resolver.WithStreamEnd, for EVENTS_MISSED).
	StreamEnd func(ctx context.Context) (context.Context, func() error)
}

var _ graphql.Transport = (*Transport)(nil)

// Supports implements graphql.Transport: a websocket upgrade.
func (t *Transport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// Do implements graphql.Transport: it upgrades the request and serves the
// connection until it ends.
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if t.CheckOrigin != nil && !t.CheckOrigin(w, r) {
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The origin was checked above, by CheckOrigin rather than the
		// library's same-host rule.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept has answered the request already.
		t.logger().DebugContext(r.Context(), "websocket upgrade refused", "request_id", t.requestID(r.Context()), "error", err)
		return
	}
	if conn.Subprotocol() != Subprotocol {
		conn.Close(closeSubprotocolUnsupported, "Subprotocol not acceptable")
		return
	}
	if t.ReadLimit > 0 {
		conn.SetReadLimit(t.ReadLimit)
	}
	c := &connection{t: t, conn: conn, exec: exec, header: r.Header, ops: map[string]*operation{}}
	if !t.Connections.add(c) {
		conn.Close(closeGoingAway, "server shutting down")
		return
	}
	defer t.Connections.remove(c)
	c.serve(r.Context())
}

func (t *Transport) logger() *slog.Logger {
	if t.Logger == nil {
		return slog.Default()
	}
	return t.Logger
}

func (t *Transport) requestID(ctx context.Context) string {
	if t.RequestID == nil {
		return ""
	}
	return t.RequestID(ctx)
}

func (t *Transport) keepAlive() time.Duration {
	if t.KeepAlive <= 0 {
		return DefaultKeepAlive
	}
	return t.KeepAlive
}

func (t *Transport) initTimeout() time.Duration {
	if t.InitTimeout <= 0 {
		return DefaultInitTimeout
	}
	return t.InitTimeout
}

func (t *Transport) present(ctx context.Context, err error) *gqlerror.Error {
	if t.ErrorPresenter == nil {
		return graphql.DefaultErrorPresenter(ctx, err)
	}
	return t.ErrorPresenter(ctx, err)
}

func (t *Transport) recover(ctx context.Context, p any) error {
	if t.Recover == nil {
		return graphql.DefaultRecover(ctx, p)
	}
	return t.Recover(ctx, p)
}

// message is a message of the protocol, in either direction.
type message struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// connection is one websocket connection, around the library's conn.
type connection struct {
	t      *Transport
	conn   *websocket.Conn
	exec   graphql.GraphExecutor
	header http.Header

	closeOnce sync.Once
	closing   atomic.Bool
	// running counts the goroutines of operations.
	running sync.WaitGroup

	// ctx is the connection's context, with the viewer once the
	// connection is acknowledged; only the read loop sets it.
	ctx context.Context

	mu        sync.Mutex
	ops       map[string]*operation // by the client's id
	pingTimer *time.Timer
}

// operation is an operation the connection is running.
type operation struct {
	cancel context.CancelFunc
}

// close starts the closing handshake with code and reason, once. It does
// not wait: the handshake waits up to 10s for the peer. The read loop ends
// when it completes.
func (c *connection) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		go c.conn.Close(code, reason)
	})
}

// serve reads the client's messages until the connection ends, then stops
// every operation.
func (c *connection) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	c.ctx = ctx
	defer func() {
		cancel()
		c.running.Wait()
		c.conn.CloseNow()
	}()
	initTimer := time.AfterFunc(c.t.initTimeout(), func() {
		c.close(closeInitTimeout, "Connection initialisation timeout")
	})
	defer initTimer.Stop()
	var expiry *time.Timer
	defer func() {
		if expiry != nil {
			expiry.Stop()
		}
	}()
	// The keepalive runs on a timer, not a goroutine of its own: a
	// goroutine per idle connection would cost its stack.
	c.mu.Lock()
	c.pingTimer = time.AfterFunc(c.t.keepAlive(), func() { c.keepAlive(ctx) })
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.pingTimer.Stop()
		c.pingTimer = nil // and no ping in flight sets it again
		c.mu.Unlock()
	}()

	acked, initialized := false, false
	for {
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			return
		}
		if c.closing.Load() {
			continue // the handshake is under way; the loop ends with it
		}
		var msg message
		if typ != websocket.MessageText || json.Unmarshal(data, &msg) != nil {
			c.close(closeBadRequest, "Invalid message received")
			continue
		}
		switch msg.Type {
		case "connection_init":
			if initialized {
				c.close(closeTooManyInits, "Too many initialisation requests")
				continue
			}
			initialized = true
			viewer, problem := c.authenticate(ctx, msg.Payload)
			if problem != "" {
				c.t.logger().InfoContext(ctx, "websocket refused", "request_id", c.t.requestID(ctx), "reason", problem)
				c.close(closeForbidden, "UNAUTHENTICATED: "+problem)
				continue
			}
			if !initTimer.Stop() {
				continue // too late: the timeout is closing the connection
			}
			c.ctx = model.NewContext(ctx, viewer)
			if c.t.Accepted != nil {
				c.t.Accepted(ctx, viewer)
			}
			if !viewer.ExpiresAt.IsZero() {
				// The connection outlives the token that opened it, but
				// not its validity: the client reconnects with a fresh
				// one (graphql-ws asks connectionParams again).
				expiry = time.AfterFunc(time.Until(viewer.ExpiresAt), func() {
					c.close(closeForbidden, "UNAUTHENTICATED: token expired")
				})
			}
			acked = true
			c.send(message{Type: "connection_ack"})
		case "subscribe":
			if !acked {
				c.close(closeUnauthorized, "Unauthorized")
				continue
			}
			var params graphql.RawParams
			dec := json.NewDecoder(bytes.NewReader(msg.Payload))
			dec.UseNumber()
			if msg.ID == "" || dec.Decode(&params) != nil {
				c.close(closeBadRequest, "Invalid message received")
				continue
			}
			c.start(msg.ID, &params)
		case "complete":
			c.mu.Lock()
			if op := c.ops[msg.ID]; op != nil {
				delete(c.ops, msg.ID)
				op.cancel()
			}
			c.mu.Unlock()
		case "ping":
			c.send(message{Type: "pong"})
		case "pong":
			// An answer to nothing we asked: the keepalive uses the
			// websocket's own ping frames, which browsers answer.
		default:
			c.close(closeBadRequest, "Invalid message received")
		}
	}
}

// authenticate finds the token in a connection_init payload, under
// Authorization, authorization or token (or in a nested headers object, as
// some clients send it), and verifies it. A payload without one falls back
// to the viewer of the upgrade request (api verified its Authorization
// header, which a program, not a browser, may send). problem is empty
// when the viewer is good.
func (c *connection) authenticate(ctx context.Context, payload json.RawMessage) (v model.Viewer, problem string) {
	var params map[string]any
	if len(payload) > 0 && !bytes.Equal(payload, []byte("null")) {
		if err := json.Unmarshal(payload, &params); err != nil {
			return v, "the connection_init payload must be a JSON object"
		}
	}
	authorization, found := initAuthorization(params)
	if !found {
		if headers, ok := params["headers"].(map[string]any); ok {
			authorization, found = initAuthorization(headers)
		}
	}
	if !found {
		if v, ok := model.ViewerFromContext(ctx); ok {
			return v, ""
		}
		return v, `missing token: send {"Authorization": "Bearer <token>"} in connection_init`
	}
	if c.t.Authenticate == nil {
		return v, "invalid token"
	}
	v, err := c.t.Authenticate(ctx, authorization)
	if err != nil {
		return v, "invalid token"
	}
	return v, ""
}

// initAuthorization returns, as an Authorization value, what the first of
// the keys that holds a non-blank string holds: the value itself under
// Authorization, and under token a bare token made "Bearer <token>". A
// value under token with a space in it is an Authorization value already
// ("Bearer <token>"): a bearer token has none (RFC 6750, b64token), so
// which form it is needs no parsing of the scheme, which stays
// Authenticate's alone.
func initAuthorization(params map[string]any) (authorization string, found bool) {
	for _, key := range []string{"Authorization", "authorization", "token"} {
		s, ok := params[key].(string)
		if !ok || strings.TrimSpace(s) == "" {
			continue
		}
		if s = strings.TrimSpace(s); key == "token" && !strings.ContainsAny(s, " \t") {
			return "Bearer " + s, true
		}
		return s, true
	}
	return "", false
}

// start runs the operation id in a goroutine of its own.
func (c *connection) start(id string, params *graphql.RawParams) {
	c.mu.Lock()
	if c.ops[id] != nil {
		c.mu.Unlock()
		c.close(closeSubscriberExists, "Subscriber for "+truncate(id, 64)+" already exists")
		return
	}
	if len(c.ops) >= maxOperations {
		c.mu.Unlock()
		c.sendErrors(id, gqlerror.List{{Message: fmt.Sprintf("too many operations on one connection: at most %d at a time", maxOperations)}})
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	op := &operation{cancel: cancel}
	c.ops[id] = op
	c.mu.Unlock()

	c.running.Add(1)
	go func() {
		defer c.running.Done()
		defer func() {
			c.mu.Lock()
			if c.ops[id] == op {
				delete(c.ops, id)
			}
			c.mu.Unlock()
			cancel()
		}()
		c.run(ctx, id, params)
	}()
}

// run executes one operation and sends its results: next for each, then
// complete; error for a document that cannot run, or for a subscription
// whose stream ended early. Nothing is sent once the client completed the
// operation or the connection is closing.
func (c *connection) run(opCtx context.Context, id string, params *graphql.RawParams) {
	ctx := opCtx
	defer func() {
		if p := recover(); p != nil {
			err := c.t.recover(ctx, p)
			c.sendErrors(id, gqlerror.List{c.t.present(ctx, err)})
		}
	}()
	params.Headers = c.header
	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}
	ctx = graphql.StartOperationTrace(ctx)
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		c.sendErrors(id, resp.Errors)
		return
	}
	if rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		if c.t.SubscriptionStarted != nil {
			c.t.SubscriptionStarted()
		}
		if c.t.SubscriptionEnded != nil {
			defer c.t.SubscriptionEnded()
		}
	}
	ended := func() error { return nil }
	if c.t.StreamEnd != nil {
		ctx, ended = c.t.StreamEnd(ctx)
	}
	responses, ctx := c.exec.DispatchOperation(ctx, rc)
	for {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		payload, err := json.Marshal(resp)
		if err != nil {
			c.sendErrors(id, gqlerror.List{c.t.present(ctx, fmt.Errorf("encode response: %w", err))})
			return
		}
		if c.send(message{ID: id, Type: "next", Payload: payload}) != nil {
			return
		}
	}
	// Not the context DispatchOperation returned, which an operation
	// middleware (a timeout) may have ended with the answer.
	if opCtx.Err() != nil {
		return
	}
	if err := ended(); err != nil {
		c.sendErrors(id, gqlerror.List{c.t.present(ctx, err)})
		return
	}
	c.send(message{ID: id, Type: "complete"})
}

// sendErrors ends operation id with an error message.
func (c *connection) sendErrors(id string, errs gqlerror.List) {
	payload, err := json.Marshal(errs)
	if err != nil {
		payload = []byte(`[{"message":"` + internalMessage + `"}]`)
	}
	c.send(message{ID: id, Type: "error", Payload: payload})
}

// send writes one message. A peer that does not take it within
// writeTimeout is dropped (the library closes the connection when a
// write's context ends).
func (c *connection) send(msg message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", msg.Type, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// keepAlive pings the peer, and again keepAlive later, and drops it when
// a pong does not come back within that time: a peer that vanished (a
// phone that lost its network) sends no close frame.
func (c *connection) keepAlive(ctx context.Context) {
	pingCtx, cancel := context.WithTimeout(ctx, c.t.keepAlive())
	err := c.conn.Ping(pingCtx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		c.t.logger().InfoContext(ctx, "websocket peer did not answer a ping; dropped", "request_id", c.t.requestID(ctx))
		c.conn.CloseNow()
		return
	}
	c.mu.Lock()
	if c.pingTimer != nil {
		c.pingTimer.Reset(c.t.keepAlive())
	}
	c.mu.Unlock()
}

// truncate cuts s to at most n bytes, between code points.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
