package model

import (
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"
)

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
