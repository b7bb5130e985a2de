package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/taskql/server/database"
	"github.com/taskql/server/events"
	"github.com/taskql/server/model"
)

// DefaultChannel is the NOTIFY channel of task changes.
const DefaultChannel = "task_changed"

// maxChannelLength is the longest identifier PostgreSQL keeps whole.
const maxChannelLength = 63

// Timing of the listener.
const (
	// DefaultLinger is how long LISTEN stays open after the last
	// subscriber leaves, when Bus.Linger is zero: a client that
	// resubscribes at once (a page reload) finds it open.
	DefaultLinger         = 10 * time.Second
	defaultHealthInterval = 30 * time.Second
	pingTimeout           = 5 * time.Second
	// connectTimeout bounds opening LISTEN, which subscribers wait for;
	// a Neon compute wakes within a few hundred milliseconds.
	connectTimeout = 30 * time.Second
)

// Bus is the event bus of instances that share a PostgreSQL database: the
// LISTEN side of what Writer sends with NOTIFY. PostgreSQL delivers the
// changes of a mutation only if it commits, and in commit order.
//
// An instance LISTENs only while it has subscribers, so that an idle
// server holds no connection and sends nothing, and a serverless database
// can suspend (CONTRACT §3): the first Subscribe opens a connection of its
// own to URL, which must not go through such a pooler (a pooled session
// changes under it), and returns once LISTEN is in place, so that every
// change committed after it returns is heard; the connection closes Linger
// after the last subscriber leaves, and is pinged only while it is open.
// When it drops (the database restarted, a Neon compute suspended or was
// replaced), changes committed meanwhile were never heard and cannot be
// replayed: every subscription it served ends with a
// model.EEVENTSMISSED error, so that its client refetches and
// resubscribes, and nothing reconnects until the next Subscribe, which
// would otherwise wake the database that just let the connection go.
//
// Set the fields, then call Start; Close stops listening.
type Bus struct {
	events.Hub

	// URL is a direct (non-pooled) connection URL: DATABASE_DIRECT_URL.
	URL string
	// Channel is the NOTIFY channel; "" means DefaultChannel.
	Channel string
	// Logger receives connection problems; nil means slog.Default().
	Logger *slog.Logger
	// HealthInterval is how long an open listener waits for a
	// notification before it pings the database, to notice a connection
	// that died without a word; zero means 30s.
	HealthInterval time.Duration
	// Linger is how long LISTEN stays open after the last subscriber
	// leaves; zero means DefaultLinger.
	Linger time.Duration
	// Health, when set, hears whether opening LISTEN worked: database
	// work like any request's, for readiness.
	Health *model.Health

	config *pgx.ConnConfig
	// running counts listener goroutines, for Close to wait on.
	running sync.WaitGroup
	// mu guards what follows, and the linger timer of cur. It is taken
	// before the hub's lock, never after.
	mu      sync.Mutex
	started bool
	closed  bool
	// cur is the listener that is opening or open; nil when there is
	// none. Subscriptions are registered only while their listener is
	// cur, so a listener that drops ends exactly those it served.
	cur *listener
}

// listener is one LISTEN connection's lifetime.
type listener struct {
	// ready is closed once LISTEN is in place, or err says why it is not.
	ready chan struct{}
	err   error
	// open is set once LISTEN is in place; guarded by Bus.mu.
	open bool
	// cancel closes the connection.
	cancel context.CancelFunc
	// linger closes the listener when it has had no subscriber for
	// Linger; guarded by Bus.mu.
	linger *time.Timer
}

var _ events.Bus = (*Bus)(nil)

// Writer returns the writer whose mutations notify on b's channel (see
// Writer), for the task store (model.Tasks.WriteWith). Each call returns a
// writer of its own; a store needs one.
func (b *Bus) Writer() model.Writer { return newWriter(b.channel()) }

// Start checks the configuration and opens LISTEN once, so that a wrong
// URL fails at boot rather than leaving subscriptions to fail later. That
// connection lingers like one whose last subscriber left, then closes.
func (p *Bus) Start(ctx context.Context) error {
	if len(p.channel()) > maxChannelLength {
		return fmt.Errorf("postgres: channel name %q is longer than PostgreSQL's %d bytes", p.channel(), maxChannelLength)
	}
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("postgres: bus already started")
	}
	config, err := database.PostgresConfig(p.URL)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	p.config = config
	p.started = true
	p.Hub.OnEmpty = p.lastLeft
	p.mu.Unlock()

	l, err := p.acquire()
	if err != nil {
		return err
	}
	select {
	case <-l.ready:
		return l.err
	case <-ctx.Done():
		return fmt.Errorf("listen for task changes: %w", ctx.Err())
	}
}

// Subscribe starts a subscription to the changes of the viewer in ctx
// (model.EUNAUTHENTICATED without one), as Hub.Subscribe does, once
// LISTEN is in place: opened by this call if no subscription holds it
// open. Every change committed after it returns reaches the subscription,
// or the subscription ends with a model.EEVENTSMISSED error.
func (p *Bus) Subscribe(ctx context.Context) (*events.Subscription, error) {
	if _, ok := model.ViewerFromContext(ctx); !ok {
		return nil, model.Unauthenticated()
	}
	// A listener can drop between opening and this subscription's
	// registration; then the next attempt opens another.
	for range 3 {
		l, err := p.acquire()
		if err != nil {
			return nil, err
		}
		select {
		case <-l.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for LISTEN: %w", ctx.Err())
		}
		if l.err != nil {
			return nil, l.err
		}
		p.mu.Lock()
		if p.cur == l {
			sub, err := p.Hub.Subscribe(ctx)
			if err == nil && l.linger != nil {
				l.linger.Stop()
			}
			p.mu.Unlock()
			return sub, err
		}
		p.mu.Unlock()
	}
	return nil, errors.New("listen for task changes: the connection dropped as soon as it opened, three times")
}

// Close stops listening, waits for the listener to finish and ends every
// subscription.
func (p *Bus) Close() {
	p.mu.Lock()
	p.closed = true
	if l := p.cur; l != nil {
		p.cur = nil
		l.cancel()
		if l.linger != nil {
			l.linger.Stop()
		}
	}
	p.mu.Unlock()
	p.running.Wait()
	p.Hub.Close()
}

// Listening reports whether LISTEN is in place now. It is not while the
// bus has had no subscriber for Linger.
func (p *Bus) Listening() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur != nil && p.cur.open
}

func (p *Bus) channel() string {
	if p.Channel == "" {
		return DefaultChannel
	}
	return p.Channel
}

func (p *Bus) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

func (p *Bus) linger() time.Duration {
	if p.Linger <= 0 {
		return DefaultLinger
	}
	return p.Linger
}

// acquire returns the current listener, starting one if there is none.
func (p *Bus) acquire() (*listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, events.ErrClosed
	case !p.started:
		return nil, errors.New("postgres: bus used before Start")
	case p.cur != nil:
		return p.cur, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{ready: make(chan struct{}), cancel: cancel}
	p.cur = l
	p.running.Add(1)
	go func() {
		defer p.running.Done()
		defer cancel()
		p.run(ctx, l)
	}()
	return l, nil
}

// run opens l's connection, LISTENs and delivers what it hears until ctx
// ends (the listener lingered with no subscriber, or the bus closed) or
// the connection fails.
func (p *Bus) run(ctx context.Context, l *listener) {
	connectCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	conn, err := p.listen(connectCtx)
	cancel()
	if p.Health != nil {
		p.Health.Report(ctx, err)
	}
	p.mu.Lock()
	if err != nil {
		l.err = err
		if p.cur == l {
			p.cur = nil
		}
		close(l.ready)
		p.mu.Unlock()
		return
	}
	l.open = true
	close(l.ready)
	// Whoever waits for ready registers next and stops the timer; if
	// nobody does (Start, or a subscriber that gave up), it closes.
	if p.Hub.Subscribers() == 0 {
		p.lingerLocked(l)
	}
	p.mu.Unlock()

	err = p.receive(ctx, conn)
	conn.Close(context.WithoutCancel(ctx))
	if ctx.Err() != nil {
		return // closed on purpose: nobody was subscribed
	}
	p.mu.Lock()
	ended := 0
	if p.cur == l {
		p.cur = nil
		ended = p.Hub.EndAll(model.EventsMissed(0))
	}
	l.open = false
	if l.linger != nil {
		l.linger.Stop()
	}
	p.mu.Unlock()
	p.logger().Warn("task change listener lost its connection; its subscriptions ended with EVENTS_MISSED "+
		"and the next subscription listens again", "channel", p.channel(), "subscriptions", ended, "error", err)
}

// lastLeft starts the linger of the open listener: the hub calls it when
// its last subscription ends.
func (p *Bus) lastLeft() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.cur; l != nil && l.open && p.Hub.Subscribers() == 0 {
		p.lingerLocked(l)
	}
}

// lingerLocked closes l after Linger unless a subscriber comes first.
func (p *Bus) lingerLocked(l *listener) {
	if l.linger != nil {
		l.linger.Reset(p.linger())
		return
	}
	l.linger = time.AfterFunc(p.linger(), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cur == l && p.Hub.Subscribers() == 0 {
			p.cur = nil
			l.open = false
			l.cancel()
		}
	})
}

// listen opens the listening connection.
func (p *Bus) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.config)
	if err != nil {
		return nil, fmt.Errorf("listen for task changes: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel()}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen for task changes: LISTEN: %w", err)
	}
	return conn, nil
}

// receive delivers the notifications of conn until it fails or ctx is
// done. A connection quiet for HealthInterval is pinged: one that died
// without closing (a vanished host) would otherwise wait forever.
func (p *Bus) receive(ctx context.Context, conn *pgx.Conn) error {
	interval := p.HealthInterval
	if interval <= 0 {
		interval = defaultHealthInterval
	}
	var chunks assembler
	for {
		waitCtx, cancel := context.WithTimeout(ctx, interval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() {
				return err
			}
			pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
			err = conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			continue
		}
		payload, err := chunks.add(n.Payload)
		if err != nil {
			p.logger().Error("task change notification dropped", "error", err)
		}
		if payload == "" {
			continue
		}
		change, err := decodeChange(payload)
		if err != nil {
			p.logger().Error("task change notification dropped", "error", err, "bytes", len(payload))
			continue
		}
		p.Deliver([]*model.TaskChange{change})
	}
}
