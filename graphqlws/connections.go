package graphqlws

import (
	"context"
	"fmt"
	"sync"
)

// Connections tracks open websocket connections, so that a shutdown can
// close them: http.Server.Shutdown neither waits for nor closes the
// connections handlers took over. The zero value is ready to use.
type Connections struct {
	mu      sync.Mutex
	conns   map[*connection]struct{}
	closing bool
	wg      sync.WaitGroup
}

// add registers c, or reports false when shutting down. A nil
// *Connections tracks nothing.
func (cs *Connections) add(c *connection) bool {
	if cs == nil {
		return true
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closing {
		return false
	}
	if cs.conns == nil {
		cs.conns = make(map[*connection]struct{})
	}
	cs.conns[c] = struct{}{}
	cs.wg.Add(1)
	return true
}

func (cs *Connections) remove(c *connection) {
	if cs == nil {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	delete(cs.conns, c)
	cs.wg.Done()
}

// Open returns how many websocket connections are open.
func (cs *Connections) Open() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.conns)
}

// Shutdown refuses new websocket connections and closes the open ones with
// 1001 (going away), which tells clients to reconnect, to another
// instance. It waits for them to finish until ctx is done, then drops
// those left.
func (cs *Connections) Shutdown(ctx context.Context) error {
	cs.mu.Lock()
	cs.closing = true
	conns := make([]*connection, 0, len(cs.conns))
	for c := range cs.conns {
		conns = append(conns, c)
	}
	cs.mu.Unlock()
	for _, c := range conns {
		c.close(closeGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		cs.wg.Wait()
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
