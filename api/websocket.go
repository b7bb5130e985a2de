package api

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
	"github.com/taskql/server/resolver"
)

// wsSubprotocol is the protocol of the graphql-ws library
// (github.com/enisdenjo/graphql-ws, PROTOCOL.md), which Apollo Client's
// GraphQLWsLink and urql use. The older subscriptions-transport-ws
// protocol, confusingly named "graphql-ws", is not served.
const wsSubprotocol = "graphql-transport-ws"

// The close codes the server sends: the protocol's, and the standard
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

// Websocket defaults.
const (
	defaultWebsocketKeepAlive   = 15 * time.Second
	defaultWebsocketInitTimeout = 10 * time.Second
	// wsWriteTimeout drops a peer that stopped reading: its socket
	// buffers are full and a write would otherwise wait forever.
	wsWriteTimeout = 10 * time.Second
	// wsMaxOperations bounds the operations one connection runs at once.
	wsMaxOperations = 100
)

// Websockets tracks open websocket connections, so that a shutdown can
// close them: http.Server.Shutdown neither waits for nor closes the
// connections handlers took over. The zero value is ready to use.
type Websockets struct {
	mu      sync.Mutex
	conns   map[*wsConn]struct{}
	closing bool
	wg      sync.WaitGroup
}

// add registers c, or reports false when shutting down.
func (ws *Websockets) add(c *wsConn) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closing {
		return false
	}
	if ws.conns == nil {
		ws.conns = make(map[*wsConn]struct{})
	}
	ws.conns[c] = struct{}{}
	ws.wg.Add(1)
	return true
}

func (ws *Websockets) remove(c *wsConn) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.conns, c)
	ws.wg.Done()
}

// Open returns how many websocket connections are open.
func (ws *Websockets) Open() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.conns)
}

// Shutdown refuses new websocket connections and closes the open ones with
// 1001 (going away), which tells clients to reconnect, to another
// instance. It waits for them to finish until ctx is done, then drops
// those left.
func (ws *Websockets) Shutdown(ctx context.Context) error {
	ws.mu.Lock()
	ws.closing = true
	conns := make([]*wsConn, 0, len(ws.conns))
	for c := range ws.conns {
		conns = append(conns, c)
	}
	ws.mu.Unlock()
	for _, c := range conns {
		c.close(closeGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		ws.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.conn.CloseNow()
		}
		return fmt.Errorf("close websockets: %w", ctx.Err())
	}
}

// wsTransport serves GraphQL over websockets: subscriptions, and queries
// and mutations too, as graphql-ws clients may send them.
//
// It is the server's own rather than gqlgen's transport.Websocket, which
// closes with 1000 when a connection's context ends (clients take 1000 for
// "done" and may not reconnect; the contract forbids it for an expired
// token), answers a subscribe before connection_ack with 1002 rather than
// 4401, and cannot say why a subscription's stream ended.
type wsTransport struct {
	// verifier is the handler's token cache, shared with HTTP requests
	// (see verifyAuthorization).
	verifier    TokenVerifier
	origins     originPolicy
	log         *slog.Logger
	present     graphql.ErrorPresenterFunc
	sockets     *Websockets
	metrics     *Metrics
	keepAlive   time.Duration
	initTimeout time.Duration
	readLimit   int64
}

func (t *wsTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func (t *wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !t.origins.allowsWebsocket(r) {
		writeErrors(w, responseMediaType(r), http.StatusForbidden, "this origin may not open a websocket: add it to CORS_ALLOWED_ORIGINS")
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{wsSubprotocol},
		// The origin was checked above, against the CORS list rather
		// than the library's same-host rule.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept has answered the request already.
		t.log.DebugContext(r.Context(), "websocket upgrade refused", "request_id", RequestID(r.Context()), "error", err)
		return
	}
	if conn.Subprotocol() != wsSubprotocol {
		conn.Close(closeSubprotocolUnsupported, "Subprotocol not acceptable")
		return
	}
	conn.SetReadLimit(t.readLimit)
	c := &wsConn{t: t, conn: conn, exec: exec, header: r.Header, ops: map[string]*wsOperation{}}
	if !t.sockets.add(c) {
		conn.Close(closeGoingAway, "server shutting down")
		return
	}
	defer t.sockets.remove(c)
	c.serve(r.Context())
}

// wsMessage is a message of the protocol, in either direction.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// wsConn is one websocket connection.
type wsConn struct {
	t      *wsTransport
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
	ops       map[string]*wsOperation // by the client's id
	pingTimer *time.Timer
}

// wsOperation is an operation the connection is running.
type wsOperation struct {
	cancel context.CancelFunc
}

// close starts the closing handshake with code and reason, once. It does
// not wait: the handshake waits up to 10s for the peer. The read loop ends
// when it completes.
func (c *wsConn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		go c.conn.Close(code, reason)
	})
}

// serve reads the client's messages until the connection ends, then stops
// every operation.
func (c *wsConn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	c.ctx = ctx
	defer func() {
		cancel()
		c.running.Wait()
		c.conn.CloseNow()
	}()
	initTimer := time.AfterFunc(c.t.initTimeout, func() {
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
	c.pingTimer = time.AfterFunc(c.t.keepAlive, func() { c.keepAlive(ctx) })
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
		var msg wsMessage
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
				c.t.log.InfoContext(ctx, "websocket refused", "request_id", RequestID(ctx), "reason", problem)
				c.close(closeForbidden, "UNAUTHENTICATED: "+problem)
				continue
			}
			if !initTimer.Stop() {
				continue // too late: the timeout is closing the connection
			}
			c.ctx = model.NewContext(ctx, viewer)
			setUser(ctx, viewer.ID)
			if !viewer.ExpiresAt.IsZero() {
				// The connection outlives the token that opened it, but
				// not its validity: the client reconnects with a fresh
				// one (graphql-ws asks connectionParams again).
				expiry = time.AfterFunc(time.Until(viewer.ExpiresAt), func() {
					c.close(closeForbidden, "UNAUTHENTICATED: token expired")
				})
			}
			acked = true
			c.send(wsMessage{Type: "connection_ack"})
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
			c.send(wsMessage{Type: "pong"})
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
// to the upgrade request's Authorization header, which a program (not a
// browser) may send. problem is empty when the viewer is good.
func (c *wsConn) authenticate(ctx context.Context, payload json.RawMessage) (v model.Viewer, problem string) {
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
	v, err := verifyAuthorization(ctx, c.t.verifier, authorization)
	if err != nil {
		return v, "invalid token"
	}
	return v, ""
}

// initAuthorization returns, as an Authorization value, the token under
// the first of the keys that holds a string: "Bearer <token>" under
// Authorization (any case of the scheme), the bare token (or "Bearer
// <token>") under token. A value in another form is returned as it is,
// for verifyAuthorization to refuse.
func initAuthorization(params map[string]any) (authorization string, found bool) {
	for _, key := range []string{"Authorization", "authorization", "token"} {
		s, ok := params[key].(string)
		if !ok || strings.TrimSpace(s) == "" {
			continue
		}
		if _, bearer := bearerToken(s); key == "token" && !bearer {
			return "Bearer " + strings.TrimSpace(s), true
		}
		return s, true
	}
	return "", false
}

// start runs the operation id in a goroutine of its own.
func (c *wsConn) start(id string, params *graphql.RawParams) {
	c.mu.Lock()
	if c.ops[id] != nil {
		c.mu.Unlock()
		c.close(closeSubscriberExists, "Subscriber for "+truncate(id, 64)+" already exists")
		return
	}
	if len(c.ops) >= wsMaxOperations {
		c.mu.Unlock()
		c.sendErrors(id, gqlerror.List{{Message: fmt.Sprintf("too many operations on one connection: at most %d at a time", wsMaxOperations)}})
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	op := &wsOperation{cancel: cancel}
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
func (c *wsConn) run(opCtx context.Context, id string, params *graphql.RawParams) {
	ctx := opCtx
	defer func() {
		if p := recover(); p != nil {
			err := recoverPanic(c.t.log)(ctx, p)
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
		c.t.metrics.SubscriptionStarted()
		defer c.t.metrics.SubscriptionEnded()
	}
	ctx, ended := resolver.WithStreamEnd(ctx)
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
		if c.send(wsMessage{ID: id, Type: "next", Payload: payload}) != nil {
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
	c.send(wsMessage{ID: id, Type: "complete"})
}

// sendErrors ends operation id with an error message.
func (c *wsConn) sendErrors(id string, errs gqlerror.List) {
	payload, err := json.Marshal(errs)
	if err != nil {
		payload = []byte(`[{"message":"` + internalMessage + `"}]`)
	}
	c.send(wsMessage{ID: id, Type: "error", Payload: payload})
}

// send writes one message. A peer that does not take it within
// wsWriteTimeout is dropped (the library closes the connection when a
// write's context ends).
func (c *wsConn) send(msg wsMessage) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", msg.Type, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsWriteTimeout)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// keepAlive pings the peer, and again keepAlive later, and drops it when
// a pong does not come back within that time: a peer that vanished (a
// phone that lost its network) sends no close frame.
func (c *wsConn) keepAlive(ctx context.Context) {
	pingCtx, cancel := context.WithTimeout(ctx, c.t.keepAlive)
	err := c.conn.Ping(pingCtx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		c.t.log.InfoContext(ctx, "websocket peer did not answer a ping; dropped", "request_id", RequestID(ctx))
		c.conn.CloseNow()
		return
	}
	c.mu.Lock()
	if c.pingTimer != nil {
		c.pingTimer.Reset(c.t.keepAlive)
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

// newWebsocketTransport is the websocket transport of cfg, whose Logger
// and MaxBodyBytes are already defaulted.
func newWebsocketTransport(cfg Config) *wsTransport {
	t := &wsTransport{
		verifier:    cfg.Verifier,
		origins:     newOriginPolicy(cfg.CORSAllowedOrigins),
		log:         cfg.Logger,
		present:     presentError(cfg.Logger),
		sockets:     cfg.Websockets,
		metrics:     cfg.Metrics,
		keepAlive:   cfg.WebsocketKeepAlive,
		initTimeout: cfg.WebsocketInitTimeout,
		readLimit:   cfg.MaxBodyBytes,
	}
	if t.sockets == nil {
		t.sockets = &Websockets{}
	}
	if t.keepAlive <= 0 {
		t.keepAlive = defaultWebsocketKeepAlive
	}
	if t.initTimeout <= 0 {
		t.initTimeout = defaultWebsocketInitTimeout
	}
	return t
}
