// Package events carries task changes from the mutation that commits them
// to the taskChanged subscribers of every server instance.
//
// A Hub fans changes out to the subscriptions of their user. Two buses feed
// it: Local, within the process (SQLite, where one instance serves), and
// postgres.Bus, through PostgreSQL's LISTEN/NOTIFY, so that a change
// committed on any instance reaches the subscribers of all of them. Each
// gives the task store the model.Writer that feeds it.
package events

import (
	"context"
	"errors"
	"sync"

	"github.com/taskql/server/model"
)

// Bus is an event bus: the task store's mutations feed it through its
// Writer, and subscribers read their changes from it. Local and
// postgres.Bus are the two.
type Bus interface {
	// Writer returns the writer the task store must run its mutations
	// with (model.Tasks.WriteWith) for their changes to reach the bus.
	Writer() model.Writer
	Subscribe(ctx context.Context) (*Subscription, error)
	// Subscribers returns how many subscriptions are open.
	Subscribers() int
	// Close ends every subscription and releases the bus.
	Close()
}

// DefaultBuffer is how many changes a subscriber may have waiting before
// its subscription ends with EVENTS_MISSED, when Hub.Buffer is zero.
const DefaultBuffer = 64

// ErrClosed is returned by Subscribe once the hub is closed.
var ErrClosed = errors.New("events: the server is shutting down")

// Hub fans changes out to the subscriptions of the user each change belongs
// to. Delivery never blocks: each subscription has a bounded buffer, and a
// subscription whose buffer is full when a change arrives is closed with a
// model.EEVENTSMISSED error, so a slow client neither holds up mutations
// and other subscribers nor loses events without being told.
//
// The zero Hub is ready to use.
type Hub struct {
	// Buffer is how many changes a subscription may have waiting; zero
	// means DefaultBuffer. Set it before the first Subscribe.
	Buffer int
	// OnEmpty, when set, is called (without the hub's lock held) each
	// time the last open subscription ends: postgres.Bus stops listening
	// a while after. Set it before the first Subscribe.
	OnEmpty func()

	mu     sync.Mutex
	subs   map[string]map[*Subscription]struct{} // by user id
	count  int
	closed bool
	// emptied records, under mu, that the last subscription ended.
	emptied bool
}

// Subscription is one subscriber's stream of changes.
type Subscription struct {
	hub  *Hub
	user string
	c    chan *model.TaskChange
	// err says why the stream ended; guarded by hub.mu.
	err error
	// stop unregisters the context callback that ends the subscription.
	stop func() bool
}

// Changes yields the subscriber's changes in commit order. It is closed
// when the subscription ends: its context is done, the subscriber fell too
// far behind, or the hub closed.
func (s *Subscription) Changes() <-chan *model.TaskChange { return s.c }

// Err says why Changes was closed: nil when the subscription's context
// ended it or the hub closed, a model.EEVENTSMISSED error when the stream
// had a gap (the subscriber fell behind, or the bus lost its connection).
// It is nil while the subscription is open.
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Subscribe starts a subscription to the changes of the viewer in ctx
// (model.EUNAUTHENTICATED without one). It lasts until ctx is done,
// unless it falls behind or the hub closes first.
func (h *Hub) Subscribe(ctx context.Context) (*Subscription, error) {
	v, ok := model.ViewerFromContext(ctx)
	if !ok {
		return nil, model.Unauthenticated()
	}
	buffer := h.Buffer
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &Subscription{hub: h, user: v.ID, c: make(chan *model.TaskChange, buffer)}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.subs == nil {
		h.subs = make(map[string]map[*Subscription]struct{})
	}
	if h.subs[s.user] == nil {
		h.subs[s.user] = make(map[*Subscription]struct{})
	}
	h.subs[s.user][s] = struct{}{}
	h.count++
	// Registered under the lock, which the callback takes: it cannot run
	// before s is in the map.
	s.stop = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		h.endLocked(s, nil)
		h.unlockAndNotify()
	})
	return s, nil
}

// Deliver hands each change to the subscriptions of its task's user, in
// order. It never blocks.
func (h *Hub) Deliver(changes []*model.TaskChange) {
	h.mu.Lock()
	defer h.unlockAndNotify()
	for _, c := range changes {
		for s := range h.subs[c.Task.UserID] {
			select {
			case s.c <- c:
			default:
				// Dropping this change silently would leave the client's
				// list wrong for good; ending the stream tells it to
				// refetch.
				h.endLocked(s, model.EventsMissed(len(s.c)+1))
			}
		}
	}
}

// Subscribers returns how many subscriptions are open.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Close ends every subscription and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, subs := range h.subs {
		for s := range subs {
			h.endLocked(s, nil)
		}
	}
	// A closed hub has no listener to stop a while later.
	h.emptied = false
}

// EndAll ends every open subscription with err, and returns how many it
// ended: what a bus does when its stream has a gap it cannot replay. It
// does not call OnEmpty: the bus that calls it has nothing left to linger.
func (h *Hub) EndAll(err error) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.count
	for _, subs := range h.subs {
		for s := range subs {
			h.endLocked(s, err)
		}
	}
	h.emptied = false
	return n
}

// unlockAndNotify releases mu and, if the last subscription ended while
// it was held, tells OnEmpty, which may take locks of its own.
func (h *Hub) unlockAndNotify() {
	empty := h.count == 0 && h.emptied
	h.emptied = false
	h.mu.Unlock()
	if empty && h.OnEmpty != nil {
		h.OnEmpty()
	}
}

// endLocked removes s, if it is still open, and closes its stream with err.
// Changes already buffered stay readable.
func (h *Hub) endLocked(s *Subscription, err error) {
	subs := h.subs[s.user]
	if _, ok := subs[s]; !ok {
		return
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(h.subs, s.user)
	}
	h.count--
	if h.count == 0 {
		h.emptied = true
	}
	s.stop()
	s.err = err
	close(s.c)
}
