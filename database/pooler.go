package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Behind a transaction-mode pooler that keeps no prepared statements per
// client (PgBouncer before 1.21, or with max_prepared_statements unset;
// Supabase's and many hosted poolers), a client's consecutive
// transactions run on whichever server connection is free. pgx's default
// mode (cache_statement) prepares each query once per client connection
// under a name derived from its text, so a second client then meets the
// first one's statement ("prepared statement stmtcache_… already exists",
// SQLSTATE 42P05), or a client finds its statement missing on the server
// connection it got this time (26000). Measured through Debian's
// PgBouncer 1.18 with 24 workers: a quarter to a third of creates and
// reads failed.
//
// The pool notices instead of asking the operator to: the first such
// error switches every connection of the pool to QueryExecModeExec (an
// unnamed statement per call, which needs nothing kept on the server; it
// costs PostgreSQL a parse and plan per call), logged once at warn, and
// the statement that met it runs again in that mode. Retrying is safe: the
// error comes from Parse or Bind, before anything executed. A pooler that
// keeps prepared statements (Neon's, PgBouncer 1.21+ with
// max_prepared_statements) and a direct connection never produce these
// errors, so they keep the cache and pay no extra round trip: detection
// costs nothing until the pooler misbehaves.

// statementModes is the statement mode of one pool's connections, shared
// by the connector and every connection it makes.
type statementModes struct {
	// exec is set once a connection met a pooler that lost its prepared
	// statements; from then on no connection of the pool prepares any.
	exec atomic.Bool
	log  *slog.Logger
}

// beforeConnect makes a connection opened after the switch unprepared by
// default, so that it needs no per-call option.
func (m *statementModes) beforeConnect(_ context.Context, c *pgx.ConnConfig) error {
	if m.exec.Load() && c.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		c.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	return nil
}

// switchToExec records that the pool is behind a pooler that loses
// prepared statements, and says so once.
func (m *statementModes) switchToExec(cause error) {
	if m.exec.CompareAndSwap(false, true) {
		m.log.Warn("database: a transaction-mode pooler that keeps no prepared statements is in front of PostgreSQL; "+
			"this pool now runs every statement unprepared (pgx QueryExecModeExec). "+
			"Nothing to configure; a pooler that passes prepared statements (PgBouncer 1.21+ with max_prepared_statements, Neon's) keeps the faster mode",
			"cause", cause.Error())
	}
}

// lostPreparedStatement reports whether err is how a pooler that shares
// server connections between clients breaks their prepared statements.
func lostPreparedStatement(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	// duplicate_prepared_statement, invalid_sql_statement_name
	return pgErr.Code == "42P05" || pgErr.Code == "26000"
}

// connector makes the pool's connections: pgx's, wrapped so that they
// notice a pooler and switch mode.
type connector struct {
	driver.Connector
	modes *statementModes
}

// Connect opens a connection with pgx's connector.
func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		dc.Close()
		return nil, fmt.Errorf("pgx's connector made a %T, not a *stdlib.Conn", dc)
	}
	return &conn{
		Conn:  sc,
		modes: c.modes,
		named: sc.Conn().Config().DefaultQueryExecMode == pgx.QueryExecModeCacheStatement,
	}, nil
}

// conn is one pooled connection. database/sql uses a connection from one
// goroutine at a time, so its fields need no lock. Every optional
// interface of pgx's connection (Pinger, SessionResetter, Validator,
// NamedValueChecker, Conn() for Raw) is promoted from the embedded one.
type conn struct {
	*stdlib.Conn
	modes *statementModes
	// named is true when the connection's default mode prepares named
	// statements (pgx's default, unless the URL or the switch chose
	// another): only those can meet a pooler that loses them.
	named bool
	// tx is the transaction open on the connection, nil outside one.
	tx *tx
}

// QueryContext runs a query, once more unprepared if a pooler lost its
// prepared statement.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := c.Conn.QueryContext(ctx, query, c.withMode(args))
	if err != nil && c.retryUnprepared(ctx, err, args) {
		rows, err = c.Conn.QueryContext(ctx, query, withExec(args))
	}
	c.ran(err)
	return rows, err
}

// ExecContext runs a statement, once more unprepared if a pooler lost its
// prepared statement.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	res, err := c.Conn.ExecContext(ctx, query, c.withMode(args))
	if err != nil && c.retryUnprepared(ctx, err, args) {
		res, err = c.Conn.ExecContext(ctx, query, withExec(args))
	}
	c.ran(err)
	return res, err
}

// BeginTx begins a transaction whose first statement may still be retried.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	inner, err := c.Conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.tx = &tx{conn: c, inner: inner, ctx: ctx, opts: opts, fresh: true}
	return c.tx, nil
}

// withMode returns args with the unprepared mode first once the pool has
// switched, for a connection opened before the switch. (pgx sends a
// statement without values with the simple protocol anyway.)
func (c *conn) withMode(args []driver.NamedValue) []driver.NamedValue {
	if c.named && len(args) > 0 && c.modes.exec.Load() {
		return withExec(args)
	}
	return args
}

// withExec puts pgx's QueryExecModeExec before args: pgx reads a leading
// QueryExecMode argument as the mode of this call.
func withExec(args []driver.NamedValue) []driver.NamedValue {
	out := make([]driver.NamedValue, 0, len(args)+1)
	out = append(out, driver.NamedValue{Ordinal: 1, Value: pgx.QueryExecModeExec})
	for _, a := range args {
		a.Ordinal++
		out = append(out, a)
	}
	return out
}

// retryUnprepared reports whether the statement that failed with err may
// run again unprepared, and switches the pool if err shows a pooler that
// lost a prepared statement. Outside a transaction the failed Parse or
// Bind ran nothing. Inside one, the error aborted the transaction: only
// when it was the first statement is the transaction begun again and the
// statement retried, since nothing else had run in it; a later statement's
// error is returned (its caller would have to run the whole transaction
// again), but the pool has switched, so it cannot happen twice.
func (c *conn) retryUnprepared(ctx context.Context, err error, args []driver.NamedValue) bool {
	if !c.named || len(args) == 0 || !lostPreparedStatement(err) {
		return false
	}
	c.modes.switchToExec(err)
	status := c.Conn.Conn().PgConn().TxStatus()
	if c.tx == nil {
		return status == 'I'
	}
	return c.tx.fresh && status == 'E' && c.tx.restart() == nil
}

// ran records that a statement of the open transaction succeeded, after
// which the transaction can no longer be begun again.
func (c *conn) ran(err error) {
	if err == nil && c.tx != nil {
		c.tx.fresh = false
	}
}

// tx is a transaction of a conn that can begin again while no statement of
// it has run.
type tx struct {
	conn  *conn
	inner driver.Tx
	// ctx and opts are those of BeginTx, for beginning again.
	ctx   context.Context
	opts  driver.TxOptions
	fresh bool
}

// Commit commits the transaction.
func (t *tx) Commit() error {
	t.conn.tx = nil
	return t.inner.Commit()
}

// Rollback rolls the transaction back.
func (t *tx) Rollback() error {
	t.conn.tx = nil
	return t.inner.Rollback()
}

// restart ends the aborted transaction and begins it again with the same
// options.
func (t *tx) restart() error {
	if err := t.inner.Rollback(); err != nil {
		return err
	}
	inner, err := t.conn.Conn.BeginTx(t.ctx, t.opts)
	if err != nil {
		return err
	}
	t.inner = inner
	return nil
}
