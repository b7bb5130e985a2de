package model

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
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
// ErrUnauthenticated and touches nothing.
type Tasks struct {
	db *bun.DB
	// publisher receives the changes of committed mutations; nil
	// publishes nothing.
	publisher Publisher
	// writer is the SQLite writers' lock (a channel, so waiting for it
	// respects the context); nil on PostgreSQL. See mutate.
	writer chan struct{}
}

// NewTasks returns the task store over db.
func NewTasks(db *bun.DB) *Tasks {
	s := &Tasks{db: db}
	if db.Dialect().Name() == dialect.SQLite {
		s.writer = make(chan struct{}, 1)
	}
	return s
}

// Get returns the viewer's task with the given id, or ErrNotFound.
func (s *Tasks) Get(ctx context.Context, id string) (*Task, error) {
	userID, taskID, err := viewerAndTask(ctx, id)
	if err != nil {
		return nil, err
	}
	t := new(Task)
	err = s.db.NewSelect().Model(t).
		Where("id = ?", taskID).
		Where("user_id = ?", userID).
		Scan(ctx)
	if err := oneTask(err, "select task"); err != nil {
		return nil, err
	}
	return t, nil
}

// viewerAndTask returns the viewer's id and the task id parsed from the id
// argument, or the error that stops a query on one task.
func viewerAndTask(ctx context.Context, id string) (userID string, taskID int64, err error) {
	if userID, err = viewerID(ctx); err != nil {
		return "", 0, err
	}
	taskID, err = ParseID("id", id)
	return userID, taskID, err
}

// oneTask maps the error of a statement on one task: no row means the
// task does not exist or is not the viewer's, which clients cannot tell
// apart.
func oneTask(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Create validates in and inserts a task owned by the viewer.
func (s *Tasks) Create(ctx context.Context, in CreateTaskInput) (*Task, error) {
	userID, err := viewerID(ctx)
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
	t := &Task{UserID: userID, Title: title, Description: desc}
	if in.Completed != nil {
		t.Completed = *in.Completed
	}
	err = s.mutate(ctx, ChangeCreated, func(ctx context.Context, tx bun.Tx) ([]*Task, error) {
		// The database sets id and both timestamps, so they come back
		// exactly as a later query will read them.
		_, err := tx.NewInsert().Model(t).
			ExcludeColumn("id", "created_at", "updated_at").
			Returning("*").
			Exec(ctx)
		return []*Task{t}, err
	})
	if err != nil {
		return nil, fmt.Errorf("insert task: %w", err)
	}
	return t, nil
}

// Update applies in to the viewer's task with the given id.
func (s *Tasks) Update(ctx context.Context, id string, in UpdateTaskInput) (*Task, error) {
	userID, taskID, err := viewerAndTask(ctx, id)
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
	return s.updateOne(ctx, taskID, userID, func(q *bun.UpdateQuery) *bun.UpdateQuery {
		if title != nil {
			q = q.Set("title = ?", *title)
		}
		if setDesc {
			q = q.Set("description = ?", desc)
		}
		if completed != nil {
			q = q.Set("completed = ?", *completed)
		}
		return q
	})
}

// Toggle flips the completion of the viewer's task with the given id.
func (s *Tasks) Toggle(ctx context.Context, id string) (*Task, error) {
	userID, taskID, err := viewerAndTask(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.updateOne(ctx, taskID, userID, func(q *bun.UpdateQuery) *bun.UpdateQuery {
		return q.Set("completed = NOT completed")
	})
}

// updateOne runs an UPDATE whose assignments set adds: it also stamps
// updated_at, restricts the statement to one task of the user and returns
// the row as it is after the change.
func (s *Tasks) updateOne(ctx context.Context, taskID int64, userID string, set func(*bun.UpdateQuery) *bun.UpdateQuery) (*Task, error) {
	t := new(Task)
	err := s.mutate(ctx, ChangeUpdated, func(ctx context.Context, tx bun.Tx) ([]*Task, error) {
		err := tx.NewUpdate().Model(t).
			Apply(set).
			Set("updated_at = ?", sqlNow{}).
			Where("id = ?", taskID).
			Where("user_id = ?", userID).
			Returning("*").
			Scan(ctx)
		return []*Task{t}, err
	})
	if err := oneTask(err, "update task"); err != nil {
		return nil, err
	}
	return t, nil
}

// Delete removes the viewer's task with the given id and returns it as it was.
func (s *Tasks) Delete(ctx context.Context, id string) (*Task, error) {
	userID, taskID, err := viewerAndTask(ctx, id)
	if err != nil {
		return nil, err
	}
	t := new(Task)
	err = s.mutate(ctx, ChangeDeleted, func(ctx context.Context, tx bun.Tx) ([]*Task, error) {
		err := tx.NewDelete().Model(t).
			Where("id = ?", taskID).
			Where("user_id = ?", userID).
			Returning("*").
			Scan(ctx)
		return []*Task{t}, err
	})
	if err := oneTask(err, "delete task"); err != nil {
		return nil, err
	}
	return t, nil
}

// DeleteCompleted removes every completed task of the viewer and returns
// them as they were, in id order.
func (s *Tasks) DeleteCompleted(ctx context.Context) ([]*Task, error) {
	userID, err := viewerID(ctx)
	if err != nil {
		return nil, err
	}
	var tasks []*Task
	err = s.mutate(ctx, ChangeDeleted, func(ctx context.Context, tx bun.Tx) ([]*Task, error) {
		err := tx.NewDelete().Model(&tasks).
			Where("user_id = ?", userID).
			Where("completed").
			Returning("*").
			Scan(ctx)
		// Sorted before publishing, so events come in id order too.
		sortByID(tasks)
		return tasks, err
	})
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("delete completed tasks: %w", err)
	}
	return tasks, nil
}

// Stats counts the viewer's tasks.
func (s *Tasks) Stats(ctx context.Context) (*TaskStats, error) {
	userID, err := viewerID(ctx)
	if err != nil {
		return nil, err
	}
	var st TaskStats
	err = s.db.NewSelect().Model((*Task)(nil)).
		ColumnExpr("count(*)").
		ColumnExpr("coalesce(sum(CASE WHEN completed THEN 1 ELSE 0 END), 0)").
		Where("user_id = ?", userID).
		Scan(ctx, &st.Total, &st.Completed)
	if err != nil {
		return nil, fmt.Errorf("count tasks: %w", err)
	}
	st.Active = st.Total - st.Completed
	return &st, nil
}
