package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotPgx is what WithPgx returns for a pool whose connections are not
// pgx's, such as SQLite's: the caller goes through database/sql instead.
var ErrNotPgx = errors.New("database: not a pgx connection")

// WithPgx runs fn on the pgx connection under one of sqldb's pooled
// connections, which Open made for PostgreSQL; for any other pool it
// returns ErrNotPgx without calling fn.
//
// It is for the hot read, a page of tasks: database/sql costs it more than
// it gives. Each query under a cancellable context starts a goroutine that
// waits for the cancellation (database/sql's awaitDone), and every value
// is boxed into a driver.Value and converted again by Scan; pgx's own
// Query watches the context with context.AfterFunc and scans into typed
// destinations directly. The connection is still taken from and given
// back to database/sql's pool, so its limits and idle handling hold.
//
// fn must not keep the connection or anything it returned after it
// returns, and must close its rows. Statements sent by fn do not go
// through the pooler detection of pooler.go: send them with a mode that
// keeps nothing on the server (PlanPerCall), which every pooler passes.
//
// As database/sql does for its own queries, a connection found broken
// before anything was sent (pgconn.SafeToRetry: closed, or its socket
// refused the first write) is discarded and fn runs again on another, up
// to badConnAttempts times in all; fn must therefore set its results
// only once it has succeeded.
func WithPgx(ctx context.Context, sqldb *sql.DB, fn func(*pgx.Conn) error) error {
	var err error
	for range badConnAttempts {
		err = withPgxOnce(ctx, sqldb, fn)
		if !errors.Is(err, driver.ErrBadConn) {
			return err
		}
	}
	return err
}

// badConnAttempts is how many connections WithPgx tries: database/sql's
// two cached ones and a new one (its maxBadConnRetries).
const badConnAttempts = 3

// withPgxOnce is one attempt of WithPgx; driver.ErrBadConn means fn met
// a broken connection before sending anything, and database/sql has
// closed it.
func withPgxOnce(ctx context.Context, sqldb *sql.DB, fn func(*pgx.Conn) error) error {
	c, err := sqldb.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Raw(func(dc any) error {
		pc, ok := dc.(*conn)
		if !ok {
			return ErrNotPgx
		}
		err := fn(pc.Conn.Conn())
		if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
			// database/sql closes a connection whose Raw returned
			// ErrBadConn instead of pooling it again.
			return driver.ErrBadConn
		}
		return err
	})
}
