package model

import (
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"
)

// What SQLite and PostgreSQL spell differently in the model's statements
// is here: times, the current time, a value's type, substring search.
// Everything else the model sends is the same SQL on both.

// SQLite has no timestamp type: the task table keeps times there as text in
// one fixed-width UTC form, so that text order is time order and a cursor's
// time compares equal to the stored one. SQLite's clock has millisecond
// resolution.
const (
	sqliteTimeLayout = "2006-01-02T15:04:05.000Z"
	sqliteNowExpr    = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
)

// sqlNow is the database's current time, as the task table stores it.
type sqlNow struct{}

func (sqlNow) AppendQuery(gen schema.QueryGen, b []byte) ([]byte, error) {
	if gen.Dialect().Name() == dialect.SQLite {
		return append(b, sqliteNowExpr...), nil
	}
	return append(b, "now()"...), nil
}

// sqlPosition is the function that finds a substring: instr(haystack,
// needle) in SQLite, strpos(haystack, needle) in PostgreSQL, each the
// 1-based position of the first match or 0.
type sqlPosition struct{}

func (sqlPosition) AppendQuery(gen schema.QueryGen, b []byte) ([]byte, error) {
	if gen.Dialect().Name() == dialect.SQLite {
		return append(b, "instr"...), nil
	}
	return append(b, "strpos"...), nil
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
