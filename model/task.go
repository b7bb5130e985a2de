package model

import (
	"context"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// Task is one row of the task table, which this server owns.
type Task struct {
	bun.BaseModel `bun:"table:task"`

	ID          int64     `bun:"id,pk,autoincrement"`
	UserID      string    `bun:"user_id,notnull"`
	Title       string    `bun:"title,notnull"`
	Description *string   `bun:"description"`
	Completed   bool      `bun:"completed,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	UpdatedAt   time.Time `bun:"updated_at,notnull"`
}

// CreateTaskInput is what a client sends to create a task.
type CreateTaskInput struct {
	Title       string
	Description *string
	Completed   *bool
}

// UpdateTaskInput is a partial update: a field that is not set is left
// unchanged, and a description set to null is cleared.
type UpdateTaskInput struct {
	Title       graphql.Omittable[*string]
	Description graphql.Omittable[*string]
	Completed   graphql.Omittable[*bool]
}

// TaskStats counts the viewer's tasks.
type TaskStats struct {
	Total     int
	Completed int
	Active    int
}

// Tasks runs every query on the task table. Each method takes the user from
// the context (see NewContext) and filters by it; without one it returns
// an EUNAUTHENTICATED error and touches nothing. Statements start from owned,
// which puts the filter in, so no method can leave it out.
type Tasks struct {
	db *bun.DB
	// writer runs the mutations and publishes their changes.
	writer Writer
	// health records the outcome of every statement, for readiness.
	health *Health
	// inspect, when set, sees every statement on the task table just
	// before it is sent, with its bound values and the users it acts
	// for; the tests set it (export_test.go) to check that each statement
	// is restricted to its owner, whichever method built it.
	inspect func(ctx context.Context, text string, args []any, users []string)
}

// NewTasks returns the task store over db. Its mutations run one at a
// time and publish nothing (NewSerialWriter(nil)) until WriteWith gives it
// the writer of an event bus.
func NewTasks(db *bun.DB) *Tasks {
	return &Tasks{db: db, writer: NewSerialWriter(nil), health: &Health{Probe: db.PingContext}}
}

// WriteWith makes the store run its mutations with w, which publishes
// their changes. Call it before the store is used.
func (s *Tasks) WriteWith(w Writer) { s.writer = w }

// Health is what the store's statements last saw of the database, for
// readiness (see Health); its Probe pings the store's database.
func (s *Tasks) Health() *Health { return s.health }

// Get returns the viewer's task with the given id, or an ENOTFOUND error.
func (s *Tasks) Get(ctx context.Context, id string) (*Task, error) {
	o, taskID, err := s.ownedTask(ctx, id)
	if err != nil {
		return nil, err
	}
	q := o.selectTasks().
		ColumnExpr(taskColumns).
		Where("id = ?", o.b.id(taskID))
	rows, err := o.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("select task: %w", err)
	}
	tasks, err := scanTasks(rows, 1)
	return oneTask(tasks, err, "select task")
}

// ownedTask starts a statement on the viewer's tasks and parses the task
// id from the id argument, or returns the error that stops a query on one
// task.
func (s *Tasks) ownedTask(ctx context.Context, id string) (*owned, int64, error) {
	o, err := s.owned(ctx)
	if err != nil {
		return nil, 0, err
	}
	taskID, err := ParseID("id", id)
	if err != nil {
		return nil, 0, err
	}
	return o, taskID, nil
}

// oneTask returns the task a statement on one task read or wrote. No row
// means the task does not exist or is not the viewer's, which clients
// cannot tell apart.
func oneTask(tasks []*Task, err error, what string) (*Task, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(tasks) == 0 {
		return nil, notFound("task")
	}
	return tasks[0], nil
}

// Create validates in and inserts a task owned by the viewer.
func (s *Tasks) Create(ctx context.Context, in CreateTaskInput) (*Task, error) {
	o, err := s.owned(ctx)
	if err != nil {
		return nil, err
	}
	title, err := cleanTitle(in.Title)
	if err != nil {
		return nil, err
	}
	desc, err := cleanDescription(in.Description)
	if err != nil {
		return nil, err
	}
	c := &Create{s: s, user: o.user, title: title, desc: desc}
	if in.Completed != nil {
		c.completed = *in.Completed
	}
	t, err := s.writer.Create(ctx, c)
	if err != nil {
		o.b.report(ctx, err)
		return nil, fmt.Errorf("insert task: %w", err)
	}
	return t, nil
}

// Update applies in to the viewer's task with the given id.
func (s *Tasks) Update(ctx context.Context, id string, in UpdateTaskInput) (*Task, error) {
	o, taskID, err := s.ownedTask(ctx, id)
	if err != nil {
		return nil, err
	}
	var title, desc *string
	var completed *bool
	if v, ok := in.Title.ValueOK(); ok {
		if v == nil {
			return nil, invalid("title", "cannot be null")
		}
		t, err := cleanTitle(*v)
		if err != nil {
			return nil, err
		}
		title = &t
	}
	_, setDesc := in.Description.ValueOK()
	if setDesc {
		if desc, err = cleanDescription(in.Description.Value()); err != nil {
			return nil, err
		}
	}
	if v, ok := in.Completed.ValueOK(); ok {
		if v == nil {
			return nil, invalid("completed", "cannot be null")
		}
		completed = v
	}
	return s.updateOne(ctx, o, taskID, func(q *bun.UpdateQuery, b *binds) *bun.UpdateQuery {
		if title != nil {
			q = q.Set("title = ?", b.add(*title))
		}
		if setDesc {
			q = q.Set("description = ?", b.add(desc))
		}
		if completed != nil {
			q = q.Set("completed = ?", b.add(*completed))
		}
		return q
	})
}

// Toggle flips the completion of the viewer's task with the given id.
func (s *Tasks) Toggle(ctx context.Context, id string) (*Task, error) {
	o, taskID, err := s.ownedTask(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.updateOne(ctx, o, taskID, func(q *bun.UpdateQuery, _ *binds) *bun.UpdateQuery {
		return q.Set("completed = NOT completed")
	})
}

// updateOne runs an UPDATE whose assignments set adds: it also stamps
// updated_at, restricts the statement to one task of o's user and returns
// the row as it is after the change.
func (s *Tasks) updateOne(ctx context.Context, o *owned, taskID int64, set func(*bun.UpdateQuery, *binds) *bun.UpdateQuery) (*Task, error) {
	q := set(o.update(), &o.b).
		Set("updated_at = ?", sqlNow{}).
		Where("id = ?", o.b.id(taskID)).
		Returning(taskColumns)
	tasks, err := s.mutate(ctx, ChangeUpdated, o, q)
	return oneTask(tasks, err, "update task")
}

// mutate runs q, a statement built from o that returns the changed tasks
// (taskColumns), with the store's writer, which publishes a change of kind
// for each if it commits; it returns the tasks in id order.
func (s *Tasks) mutate(ctx context.Context, kind ChangeKind, o *owned, q schema.QueryAppender) ([]*Task, error) {
	text, err := o.text(q)
	if err != nil {
		return nil, err
	}
	tasks, err := s.writer.Write(ctx, &Mutation{o: o, kind: kind, text: text})
	if err != nil {
		// A writer's BEGIN, notification or COMMIT may fail after the
		// statement did not.
		o.b.report(ctx, err)
		return nil, err
	}
	return tasks, nil
}

// Delete removes the viewer's task with the given id and returns it as it was.
func (s *Tasks) Delete(ctx context.Context, id string) (*Task, error) {
	o, taskID, err := s.ownedTask(ctx, id)
	if err != nil {
		return nil, err
	}
	q := o.delete().
		Where("id = ?", o.b.id(taskID)).
		Returning(taskColumns)
	tasks, err := s.mutate(ctx, ChangeDeleted, o, q)
	return oneTask(tasks, err, "delete task")
}

// DeleteCompleted removes every completed task of the viewer and returns
// them as they were, in id order.
func (s *Tasks) DeleteCompleted(ctx context.Context) ([]*Task, error) {
	o, err := s.owned(ctx)
	if err != nil {
		return nil, err
	}
	q := o.delete().
		Where("completed").
		Returning(taskColumns)
	tasks, err := s.mutate(ctx, ChangeDeleted, o, q)
	if err != nil {
		return nil, fmt.Errorf("delete completed tasks: %w", err)
	}
	return tasks, nil
}

// Stats counts the viewer's tasks.
func (s *Tasks) Stats(ctx context.Context) (*TaskStats, error) {
	o, err := s.owned(ctx)
	if err != nil {
		return nil, err
	}
	var st TaskStats
	q := o.selectTasks().
		ColumnExpr("count(*)").
		ColumnExpr("coalesce(sum(CASE WHEN completed THEN 1 ELSE 0 END), 0)")
	if err := o.sendRow(ctx, q, &st.Total, &st.Completed); err != nil {
		return nil, fmt.Errorf("count tasks: %w", err)
	}
	st.Active = st.Total - st.Completed
	return &st, nil
}
