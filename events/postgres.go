package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/taskql/server/database"
	"github.com/taskql/server/model"
)

// DefaultChannel is the NOTIFY channel of task changes.
const DefaultChannel = "task_changed"

// maxChannelLength is the longest identifier PostgreSQL keeps whole.
const maxChannelLength = 63

// Reconnection and health-check timing of the listener.
const (
	minBackoff            = 100 * time.Millisecond
	maxBackoff            = 5 * time.Second
	defaultHealthInterval = 30 * time.Second
	pingTimeout           = 5 * time.Second
)

// Postgres is the bus of instances that share a PostgreSQL database. A
// mutation sends its changes with pg_notify in the statement that makes
// them (PublishExpr), or in its transaction (PublishTx): PostgreSQL
// delivers them only if it commits, and in commit order, with no round
// trip after the commit. NOTIFY works through a
// transaction-mode pooler such as Neon's. Every instance LISTENs on a
// connection of its own to URL, which must not go through such a pooler
// (a pooled session changes under it), and delivers what it hears, its
// own changes included, to its subscribers. When that connection drops
// (the database restarted, a Neon compute was replaced) it reconnects
// with backoff and listens again; subscriptions stay open meanwhile, but
// changes committed while it was away are not replayed.
//
// Set the fields, then call Start; Close stops listening.
type Postgres struct {
	Hub

	// URL is a direct (non-pooled) connection URL: DATABASE_DIRECT_URL.
	URL string
	// Channel is the NOTIFY channel; "" means DefaultChannel.
	Channel string
	// Logger receives connection problems; nil means slog.Default().
	Logger *slog.Logger
	// HealthInterval is how long the listener waits for a notification
	// before it pings the database, to notice a connection that died
	// without a word; zero means 30s.
	HealthInterval time.Duration

	config *pgx.ConnConfig
	stop   context.CancelFunc
	done   chan struct{}
	// mu guards listening.
	mu        sync.Mutex
	listening bool
}

var _ Bus = (*Postgres)(nil)

// PublishTx sends changes with pg_notify in the mutation's transaction,
// for a change PublishExpr declined.
func (p *Postgres) PublishTx(ctx context.Context, tx bun.Tx, changes []*model.TaskChange) error {
	var payloads []string
	for _, c := range changes {
		payload, err := encodeChange(c)
		if err != nil {
			return err
		}
		payloads = append(payloads, splitPayload(payload, MaxPayload)...)
	}
	// One statement for any number of changes (deleteCompletedTasks may
	// have many), sent in the array's order (the plan is the function scan
	// itself, in ordinality order; a volatile function of the select list
	// is never evaluated before a sort).
	_, err := tx.ExecContext(ctx, "SELECT pg_notify(?, n.p) FROM unnest(?::text[]) WITH ORDINALITY AS n(p, i) ORDER BY n.i",
		p.channel(), pgdialect.Array(payloads))
	if err != nil {
		return fmt.Errorf("pg_notify: %w", err)
	}
	return nil
}

// maxStatementChange bounds the payload of a change published by
// PublishExpr, without its user id: a title and description of the most
// characters the table admits, each escaped as six bytes (a control
// character as \u00XX), and room for the names, id, flag and times.
// PublishExpr cannot split a payload, so it declines a user id that could
// make one too long.
const maxStatementChange = 6*(model.MaxTitleLength+model.MaxDescriptionLength) + 512

var _ model.StatementPublisher = (*Postgres)(nil)

// PublishExpr returns a pg_notify of the change, encoded by PostgreSQL in
// the format of encodeChange, for the mutation's own statement: one
// statement per mutation instead of a transaction of four (see
// model.StatementPublisher).
func (p *Postgres) PublishExpr(kind model.ChangeKind, userID, row string, bind func(any) string) (string, bool) {
	if maxStatementChange+6*len(userID) > MaxPayload {
		return "", false
	}
	col := func(name string) string { return row + "." + name }
	return "pg_notify(" + bind(p.channel()) + ", json_build_object(" +
		"'kind', " + bind(string(kind)) + "::text, " +
		"'task', json_build_object(" +
		"'id', " + col("id") + ", " +
		"'userId', " + col("user_id") + ", " +
		"'title', " + col("title") + ", " +
		"'description', " + col("description") + ", " +
		"'completed', " + col("completed") + ", " +
		"'createdAt', " + col("created_at") + ", " +
		"'updatedAt', " + col("updated_at") + "))::text)", true
}

// Publish does nothing: this instance hears its own changes through
// LISTEN, like the others, so there is one path and one order.
func (*Postgres) Publish([]*model.TaskChange) {}

// Start connects and LISTENs, so that a wrong URL fails at boot rather
// than leaving subscriptions silent, then keeps listening in the
// background until Close.
func (p *Postgres) Start(ctx context.Context) error {
	if p.done != nil {
		return errors.New("events: Postgres bus already started")
	}
	if len(p.channel()) > maxChannelLength {
		return fmt.Errorf("events: channel name %q is longer than PostgreSQL's %d bytes", p.channel(), maxChannelLength)
	}
	config, err := database.PostgresConfig(p.URL)
	if err != nil {
		return err
	}
	p.config = config
	conn, err := p.listen(ctx)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p.stop = stop
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		p.run(runCtx, conn)
	}()
	return nil
}

// Close stops listening, waits for the listener to finish and ends every
// subscription.
func (p *Postgres) Close() {
	if p.done != nil {
		p.stop()
		<-p.done
	}
	p.Hub.Close()
}

// Listening reports whether the listener is connected now. Changes
// committed while it is not are not delivered to this instance.
func (p *Postgres) Listening() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listening
}

func (p *Postgres) channel() string {
	if p.Channel == "" {
		return DefaultChannel
	}
	return p.Channel
}

func (p *Postgres) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.Default()
	}
	return p.Logger
}

func (p *Postgres) setListening(v bool) {
	p.mu.Lock()
	p.listening = v
	p.mu.Unlock()
}

// listen opens the listening connection.
func (p *Postgres) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.config)
	if err != nil {
		return nil, fmt.Errorf("listen for task changes: connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.channel()}.Sanitize()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("listen for task changes: LISTEN: %w", err)
	}
	p.setListening(true)
	return conn, nil
}

// run receives notifications on conn, and on fresh connections after it
// fails, until ctx is done.
func (p *Postgres) run(ctx context.Context, conn *pgx.Conn) {
	log := p.logger()
	backoff := minBackoff
	for {
		err := p.receive(ctx, conn)
		p.setListening(false)
		conn.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		log.Warn("task change listener lost its connection; reconnecting", "error", err)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			conn, err = p.listen(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			log.Warn("task change listener cannot reconnect", "retry_in", backoff, "error", err)
		}
		backoff = minBackoff
		log.Info("task change listener reconnected; changes committed while it was away were not delivered", "channel", p.channel())
	}
}

// receive delivers the notifications of conn until it fails or ctx is
// done. A connection quiet for HealthInterval is pinged: one that died
// without closing (a vanished host) would otherwise wait forever.
func (p *Postgres) receive(ctx context.Context, conn *pgx.Conn) error {
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
