package model

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/taskql/server/database"
)

// binds collects the values of one statement and puts a placeholder in the
// SQL text in their place. Bun writes values into the text, so every call
// of a query is a new statement that PostgreSQL parses and plans again.
// With the values bound, the text of a query is the same from call to
// call, pgx prepares it once per connection and PostgreSQL reuses the plan
// (except with planPerCall). Both drivers read $N as the N-th argument.
type binds struct {
	sqlite bool
	args   []any
	// planPerCall asks PostgreSQL for a plan made for these values
	// (database.PlanPerCall).
	planPerCall bool
	// health receives the outcome of the statement.
	health *Health
}

// binds starts the values of a statement; only owned calls it, so that
// every statement on the task table starts with its owner's predicate.
func (s *Tasks) binds() binds {
	return binds{sqlite: s.db.Dialect().Name() == dialect.SQLite, args: make([]any, 0, 8), health: s.health}
}

// report tells health how the statement went: whether the database
// answered it.
func (b *binds) report(ctx context.Context, err error) {
	if b.health != nil {
		b.health.Report(ctx, err)
	}
}

// add binds v and returns its placeholder, for a Bun query's "?".
func (b *binds) add(v any) bun.Safe {
	b.args = append(b.args, v)
	return bun.Safe("$" + strconv.Itoa(len(b.args)))
}

// typed binds v as a value of the PostgreSQL type pgType, for where
// PostgreSQL cannot infer the type (a row comparison) or would infer a
// narrower one (an id compared with the int4 column: an id beyond its
// range must match no task rather than fail to encode). SQLite needs no
// type; it would read most type names as NUMERIC.
func (b *binds) typed(v any, pgType string) bun.Safe {
	p := b.add(v)
	if b.sqlite {
		return p
	}
	return p + bun.Safe("::"+pgType)
}

// id binds a task id.
func (b *binds) id(id int64) bun.Safe { return b.typed(id, "bigint") }

// time binds t as the task table stores times: a timestamptz on
// PostgreSQL, fixed-width UTC text on SQLite (see sqliteTimeLayout).
func (b *binds) time(t time.Time) bun.Safe {
	if b.sqlite {
		return b.add(t.UTC().Format(sqliteTimeLayout))
	}
	return b.typed(t.UTC(), "timestamptz")
}

// querier runs a statement with bound values: the pool or a transaction.
// Bun's own methods would write the values into the text again, so
// statements go to database/sql directly (see owned.send).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryArgs are the arguments of the statement for database/sql.
func (b *binds) queryArgs() []any {
	if b.planPerCall && !b.sqlite {
		return append([]any{database.PlanPerCall}, b.args...)
	}
	return b.args
}
