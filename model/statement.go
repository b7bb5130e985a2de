// Statements on the task table are built by Bun and sent with their values
// bound, and their rows are scanned into Task by position, here.
//
// Why not Bun's own Exec and Scan: Bun writes each value into the text of
// the statement, so every call would be a new statement that PostgreSQL
// parses and plans again, and pgx could reuse nothing; with the values
// bound ($N placeholders), the text of a query is the same from call to
// call, pgx prepares it once per connection and PostgreSQL reuses the plan
// (except for a page, which plans per call: binds.planPerCall). And Bun's
// scanning finds a scanner per column by reflection for every row, a fifth
// of the CPU of a page request in the profile (bench/README.md), where the
// typed destinations of scanTasks need none. Bun still builds every
// statement (owner.go); this file only binds, sends and reads.
package model

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/taskql/server/database"
)

// binds collects the values of one statement and puts a placeholder in the
// SQL text in their place; both drivers read $N as the N-th argument.
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

// Querier runs a statement with bound values: the pool (bun.DB's DB) or a
// transaction (bun.Tx's Tx).
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryArgs are the arguments of the statement for database/sql.
func (b *binds) queryArgs() []any {
	if b.planPerCall && !b.sqlite {
		return append([]any{database.PlanPerCall}, b.args...)
	}
	return b.args
}

// taskColumns are the task table's columns in the order of Task's fields,
// the order scanTasks reads them in; statements that change tasks return
// them too.
const taskColumns = `id, user_id, title, description, completed, created_at, updated_at`

// scanTasks reads every row of rows, which has taskColumns and then one
// column per extra destination. The tasks share one allocation.
func scanTasks(rows *sql.Rows, capacity int, extra ...any) ([]*Task, error) {
	defer rows.Close()
	all := make([]Task, 0, capacity)
	var (
		row  Task
		desc sql.NullString
	)
	dest := append([]any{&row.ID, &row.UserID, &row.Title, &desc, &row.Completed,
		(*columnTime)(&row.CreatedAt), (*columnTime)(&row.UpdatedAt)}, extra...)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row.Description = nil
		if desc.Valid {
			s := desc.String
			row.Description = &s
		}
		all = append(all, row)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tasks := make([]*Task, len(all))
	for i := range all {
		tasks[i] = &all[i]
	}
	return tasks, nil
}

// scanPgxTasks is scanTasks for a page read with pgx's own API (see
// owned.readPage), for the viewer user. pgx decodes the id, the flag and
// the timestamps (in UTC, database.Open) straight into the task; the
// texts, a string each per row in pgx's scanning (title, description,
// user id: 3 of every 5 allocations of a page), are taken as the bytes
// PostgreSQL sent (the same in the text and the binary format) into one
// buffer per page, made one string and sliced. The user id is not copied
// at all: it is compared with the viewer's, which every row has since the
// statement is owned, and the rows share the viewer's string. A page of
// 20 in model.BenchmarkList: 128 allocations before, 50 after.
func scanPgxTasks(rows pgx.Rows, capacity int, user string) ([]*Task, error) {
	defer rows.Close()
	all := make([]Task, 0, capacity)
	// ends holds, per row, where its title and description end in text;
	// a description's end is -1 when it is NULL.
	type ends struct{ title, desc int }
	at := make([]ends, 0, capacity)
	text := make([]byte, 0, 128*capacity)
	var row Task
	dest := []any{&row.ID, nil, nil, nil, &row.Completed, &row.CreatedAt, &row.UpdatedAt}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		raw := rows.RawValues()
		if string(raw[1]) != user || raw[2] == nil {
			return nil, fmt.Errorf("task %d: the row is not the viewer's or has no title", row.ID)
		}
		text = append(text, raw[2]...)
		e := ends{title: len(text), desc: -1}
		if raw[3] != nil {
			text = append(text, raw[3]...)
			e.desc = len(text)
		}
		all = append(all, row)
		at = append(at, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	str := string(text)
	tasks := make([]*Task, len(all))
	// descs holds the descriptions the tasks point to, in one allocation.
	descs := make([]string, len(all))
	from := 0
	for i := range all {
		t := &all[i]
		t.UserID = user
		t.Title = str[from:at[i].title]
		from = at[i].title
		if at[i].desc >= 0 {
			descs[i] = str[from:at[i].desc]
			t.Description = &descs[i]
			from = at[i].desc
		}
		tasks[i] = t
	}
	return tasks, nil
}

// columnTime scans a task's timestamp as Bun does: PostgreSQL's driver
// hands over a time.Time; SQLite's, for a value it does not recognise as a
// time, the RFC 3339 text the table stores.
type columnTime time.Time

func (t *columnTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*t = columnTime(v)
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	}
	return fmt.Errorf("scan %T into a time", src)
}

func (t *columnTime) parse(s string) error {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan %q into a time: %w", s, err)
	}
	*t = columnTime(tm)
	return nil
}
