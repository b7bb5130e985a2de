// Package gqlws is a small client of the graphql-transport-ws protocol
// (the graphql-ws library's), for tests and benchmarks: it speaks the
// protocol message by message, so a test can also break it on purpose.
package gqlws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Subprotocol is the websocket subprotocol of graphql-transport-ws.
const Subprotocol = "graphql-transport-ws"

// Message is one message of the protocol.
type Message struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Closed is the error of a read on a connection the server closed.
type Closed struct {
	Code   int
	Reason string
}

func (c *Closed) Error() string { return fmt.Sprintf("closed with %d %q", c.Code, c.Reason) }

// Conn is a client connection.
type Conn struct {
	ws *websocket.Conn
	// Response is the answer to the upgrade request.
	Response *http.Response
}

// Dial opens a websocket to url (http:// or ws://) offering the
// subprotocol. header is sent with the upgrade request (Origin, say).
func Dial(ctx context.Context, url string, header http.Header) (*Conn, error) {
	url = strings.Replace(url, "http", "ws", 1)
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{Subprotocol},
		HTTPHeader:   header,
	})
	if err != nil {
		return &Conn{Response: resp}, fmt.Errorf("dial %s: %w", url, err)
	}
	ws.SetReadLimit(1 << 20)
	return &Conn{ws: ws, Response: resp}, nil
}

// Send writes msg.
func (c *Conn) Send(ctx context.Context, msg Message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// SendRaw writes text as one message, as it is.
func (c *Conn) SendRaw(ctx context.Context, text string) error {
	return c.ws.Write(ctx, websocket.MessageText, []byte(text))
}

// Next reads the next message, answering the server's pings on the way.
// When the server closes the connection the error is a *Closed. When ctx
// ends first, the connection is closed (the websocket library's rule), so
// wait with a timeout on a goroutine that reads, not with a short ctx.
func (c *Conn) Next(ctx context.Context) (Message, error) {
	for {
		_, b, err := c.ws.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return Message{}, &Closed{Code: int(ce.Code), Reason: ce.Reason}
			}
			return Message{}, err
		}
		var msg Message
		if err := json.Unmarshal(b, &msg); err != nil {
			return Message{}, fmt.Errorf("decode %s: %w", b, err)
		}
		if msg.Type == "ping" {
			if err := c.Send(ctx, Message{Type: "pong"}); err != nil {
				return Message{}, err
			}
			continue
		}
		return msg, nil
	}
}

// Init sends connection_init with payload (nil for none) and waits for
// connection_ack.
func (c *Conn) Init(ctx context.Context, payload any) error {
	msg := Message{Type: "connection_init"}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		msg.Payload = b
	}
	if err := c.Send(ctx, msg); err != nil {
		return err
	}
	ack, err := c.Next(ctx)
	if err != nil {
		return err
	}
	if ack.Type != "connection_ack" {
		return fmt.Errorf("want connection_ack, got %s", ack.Type)
	}
	return nil
}

// Subscribe starts operation id with query and variables (may be nil).
func (c *Conn) Subscribe(ctx context.Context, id, query string, variables map[string]any) error {
	b, err := json.Marshal(map[string]any{"query": query, "variables": variables})
	if err != nil {
		return err
	}
	return c.Send(ctx, Message{ID: id, Type: "subscribe", Payload: b})
}

// Close closes the connection normally.
func (c *Conn) Close() error {
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

// CloseNow drops the connection without a closing handshake.
func (c *Conn) CloseNow() error {
	return c.ws.CloseNow()
}

// WantClosed reads c until the server closes it, for at most 10s, and
// fails the test unless it closed with code and a reason starting with
// reason. Messages before the close are skipped.
func WantClosed(t testing.TB, c *Conn, code int, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		msg, err := c.Next(ctx)
		if err == nil {
			continue
		}
		var closed *Closed
		if !errors.As(err, &closed) {
			t.Fatalf("want close %d %q, got %v (last message %+v)", code, reason, err, msg)
		}
		if closed.Code != code || !strings.HasPrefix(closed.Reason, reason) {
			t.Fatalf("want close %d with a reason starting %q, got %d %q", code, reason, closed.Code, closed.Reason)
		}
		return
	}
}
