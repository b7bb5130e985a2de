package model

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"github.com/taskql/server/database"
)

// owned is the only way into the task table: a statement under
// construction that is already restricted to the users it acts for. It is
// made by Tasks.owned, from the viewer in a request's context, or by
// Tasks.ownedByGroup for a group of concurrent creates, so a method that
// forgets the viewer cannot build a statement at all, and a statement
// built from owned cannot leave the owner's predicate out. Every
// statement it builds is then sent by send, sendRow or readPage, the only
// places where task statements reach the database (and where tests
// inspect them, see Tasks.inspect).
//
// The predicate is the statement's first bound value ($1), so that the
// text of each query stays the same from call to call (see binds).
type owned struct {
	s *Tasks
	// b holds the statement's values; a part of owned rather than its own
	// allocation, since every request builds at least one statement.
	b binds
	// user is the id of the viewer the statement acts for; for a group of
	// creates, that of its first call, and group holds them all, in the
	// group's order.
	user  string
	group []string
	// owner is the placeholder bound to the viewer's id (one user) or to
	// the array of users (a group).
	owner bun.Safe
}

// owned starts a statement on the viewer's tasks, or returns
// an EUNAUTHENTICATED error when ctx has no viewer.
func (s *Tasks) owned(ctx context.Context) (*owned, error) {
	userID, err := viewerID(ctx)
	if err != nil {
		return nil, err
	}
	o := &owned{s: s, b: s.binds(), user: userID}
	o.owner = o.b.add(userID)
	return o, nil
}

// ownedByCreates starts the statement that inserts the tasks of creates,
// each owned by the viewer of its own call (Create.user, which the store
// took from owned).
func (s *Tasks) ownedByCreates(creates []*Create) *owned {
	o := &owned{s: s, b: s.binds(), user: creates[0].user}
	if len(creates) > 1 {
		o.group = make([]string, len(creates))
		for i, c := range creates {
			o.group[i] = c.user
		}
	}
	o.owner = o.b.add(o.user)
	return o
}

// selectTasks starts a SELECT of the viewer's tasks.
func (o *owned) selectTasks() *bun.SelectQuery {
	return o.s.db.NewSelect().Model((*Task)(nil)).Where("user_id = ?", o.owner)
}

// update starts an UPDATE of the viewer's tasks.
func (o *owned) update() *bun.UpdateQuery {
	return o.s.db.NewUpdate().Model((*Task)(nil)).Where("user_id = ?", o.owner)
}

// delete starts a DELETE of the viewer's tasks.
func (o *owned) delete() *bun.DeleteQuery {
	return o.s.db.NewDelete().Model((*Task)(nil)).Where("user_id = ?", o.owner)
}

// insert is the INSERT of the tasks of creates, o's (ownedByCreates): a
// row each, in their order, the first owned through o.owner and each other
// by its own call's viewer. The database sets id and both timestamps, so
// they come back exactly as a later query will read them. One statement
// for any number of rows is plain SQL in both dialects; Bun's own
// multi-row INSERT would write the values into the text (see binds).
func (o *owned) insert(creates []*Create) schema.QueryAppender {
	b := &o.b
	var text strings.Builder
	text.WriteString(`INSERT INTO "task" ("user_id", "title", "description", "completed") VALUES `)
	for i, c := range creates {
		owner := o.owner
		if i > 0 {
			text.WriteString(", ")
			owner = b.add(c.user)
		}
		fmt.Fprintf(&text, "(%s, %s, %s, %s)", owner, b.add(c.title), b.add(c.desc), b.add(c.completed))
	}
	text.WriteString(" RETURNING " + taskColumns)
	return o.s.db.NewRaw(text.String())
}

// users are the ids of the users the statement acts for.
func (o *owned) users() []string {
	if o.group != nil {
		return o.group
	}
	return []string{o.user}
}

// text returns the SQL of q, which was built from o with o's placeholders.
func (o *owned) text(q schema.QueryAppender) (string, error) {
	text, err := q.AppendQuery(o.s.db.QueryGen(), nil)
	if err != nil {
		return "", fmt.Errorf("build query: %w", err)
	}
	return string(text), nil
}

// send runs the statement text with o's bound values on conn (the pool or
// a transaction) and reports the outcome to health. Statements go to
// database/sql directly with their values bound (see binds), so Bun's
// query hooks never see them, hence inspect.
func (o *owned) send(ctx context.Context, conn Querier, text string) (*sql.Rows, error) {
	if o.s.inspect != nil {
		o.s.inspect(ctx, text, o.b.args, o.users())
	}
	rows, err := conn.QueryContext(ctx, text, o.b.queryArgs()...)
	o.b.report(ctx, err)
	return rows, err
}

// sendRow runs q, which returns one row, on the pool and scans the row
// into dest; no row is sql.ErrNoRows.
func (o *owned) sendRow(ctx context.Context, q schema.QueryAppender, dest ...any) error {
	text, err := o.text(q)
	if err != nil {
		return err
	}
	if o.s.inspect != nil {
		o.s.inspect(ctx, text, o.b.args, o.users())
	}
	err = o.s.db.DB.QueryRowContext(ctx, text, o.b.queryArgs()...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		o.b.report(ctx, nil) // an answer: there is no such row
	} else {
		o.b.report(ctx, err)
	}
	return err
}

// query runs q on the pool and returns its rows.
func (o *owned) query(ctx context.Context, q schema.QueryAppender) (*sql.Rows, error) {
	text, err := o.text(q)
	if err != nil {
		return nil, err
	}
	return o.send(ctx, o.s.db.DB, text)
}

// readPage runs q, a SELECT of taskColumns that plans per call (see
// binds.planPerCall), on the pool and returns its tasks; capacity is how
// many it may return. On PostgreSQL it reads them with pgx's own API
// rather than database/sql (database.WithPgx): a page is the server's hot
// read, and that took a page of 20 from 281 allocations to 140
// (model.BenchmarkList).
// The statement is unnamed (database.PlanPerCall), which needs nothing
// kept on the server, so it skips the pooler detection of database/sql's
// path safely.
func (o *owned) readPage(ctx context.Context, q schema.QueryAppender, capacity int) ([]*Task, error) {
	text, err := o.text(q)
	if err != nil {
		return nil, err
	}
	if !o.b.sqlite && o.b.planPerCall {
		if o.s.inspect != nil {
			o.s.inspect(ctx, text, o.b.args, o.users())
		}
		var tasks []*Task
		err := database.WithPgx(ctx, o.s.db.DB, func(c *pgx.Conn) error {
			rows, err := c.Query(ctx, text, o.b.queryArgs()...)
			if err != nil {
				return err
			}
			tasks, err = scanPgxTasks(rows, capacity, o.user)
			return err
		})
		if !errors.Is(err, database.ErrNotPgx) {
			o.b.report(ctx, err)
			return tasks, err
		}
	}
	rows, err := o.send(ctx, o.s.db.DB, text)
	if err != nil {
		return nil, err
	}
	return scanTasks(rows, capacity)
}
