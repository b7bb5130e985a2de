package model_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/taskql/server/graph/scalar"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// The test helpers of the model's integration suite. Every test runs on
// SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL, each on a fresh
// database from testutil.

func idOf(t *model.Task) string { return strconv.FormatInt(t.ID, 10) }

func isPG(db *bun.DB) bool { return db.Dialect().Name() == dialect.PG }

// wantInvalid fails unless err is an EINVALID *model.Error naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var ie *model.Error
	if !errors.As(err, &ie) || ie.Code != model.EINVALID {
		t.Fatalf("error = %v (%T), want an EINVALID *model.Error for field %q", err, err, field)
	}
	if ie.Field != field {
		t.Fatalf("Error.Field = %q, want %q (error: %v)", ie.Field, field, err)
	}
	if ie.Error() == "" || ie.Message == "" {
		t.Fatalf("EINVALID error for %q has no message", field)
	}
}

// wantCode fails unless model.ErrorCode(err) is code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := model.ErrorCode(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func mustCreate(t *testing.T, s *model.Tasks, ctx context.Context, in model.CreateTaskInput) *model.Task {
	t.Helper()
	task, err := s.Create(ctx, in)
	if err != nil {
		t.Fatalf("Create(%+v): %v", in, err)
	}
	return task
}

func mustGet(t *testing.T, s *model.Tasks, ctx context.Context, id string) *model.Task {
	t.Helper()
	task, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return task
}

// rawRows reads every row of the task table in id order, bypassing the
// model: it is the oracle the model's answers are checked against.
func rawRows(t *testing.T, db *bun.DB) []*model.Task {
	t.Helper()
	var tasks []*model.Task
	if err := db.NewSelect().Model(&tasks).Order("id").Scan(context.Background()); err != nil {
		t.Fatalf("read task table: %v", err)
	}
	return tasks
}

// rawRowsOf is rawRows restricted to one user.
func rawRowsOf(t *testing.T, db *bun.DB, userID string) []*model.Task {
	t.Helper()
	var out []*model.Task
	for _, task := range rawRows(t, db) {
		if task.UserID == userID {
			out = append(out, task)
		}
	}
	return out
}

// rawRow reads one row by id, bypassing the model; nil when it is gone.
func rawRow(t *testing.T, db *bun.DB, id int64) *model.Task {
	t.Helper()
	for _, task := range rawRows(t, db) {
		if task.ID == id {
			return task
		}
	}
	return nil
}

// storedTime is tm as the task table stores it, for tests that write
// timestamps directly: text with milliseconds on SQLite, timestamptz on
// PostgreSQL.
func storedTime(db *bun.DB, tm time.Time) any {
	if isPG(db) {
		return tm.UTC()
	}
	return tm.UTC().Format("2006-01-02T15:04:05.000Z")
}

// setTimes overwrites the timestamps of a task directly in the table.
func setTimes(t *testing.T, db *bun.DB, id int64, created, updated time.Time) {
	t.Helper()
	_, err := db.NewUpdate().Model((*model.Task)(nil)).
		Set("created_at = ?", storedTime(db, created)).
		Set("updated_at = ?", storedTime(db, updated)).
		Where("id = ?", id).
		Exec(context.Background())
	if err != nil {
		t.Fatalf("set times of task %d: %v", id, err)
	}
}

// sameTask fails unless got and want agree on every column; times are
// compared as instants.
func sameTask(t *testing.T, what string, got, want *model.Task) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	if got.ID != want.ID || got.UserID != want.UserID || got.Title != want.Title ||
		!reflect.DeepEqual(got.Description, want.Description) || got.Completed != want.Completed ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("%s:\n got  %s\n want %s", what, show(got), show(want))
	}
}

func show(t *model.Task) string {
	desc := "<nil>"
	if t.Description != nil {
		desc = strconv.Quote(*t.Description)
	}
	return "{id=" + strconv.FormatInt(t.ID, 10) + " user=" + t.UserID + " title=" + strconv.Quote(t.Title) +
		" description=" + desc + " completed=" + strconv.FormatBool(t.Completed) +
		" created=" + t.CreatedAt.Format(time.RFC3339Nano) + " updated=" + t.UpdatedAt.Format(time.RFC3339Nano) + "}"
}

// wire is a time as the GraphQL layer writes it.
func wire(tm time.Time) string {
	var b bytes.Buffer
	scalar.MarshalTime(tm).MarshalGQL(&b)
	return b.String()
}

// listAll reads every task of the viewer matching filter through List, in
// the default order.
func listAll(t *testing.T, s *model.Tasks, ctx context.Context, filter model.TaskFilter) []*model.Task {
	t.Helper()
	var all []*model.Task
	var after *string
	for range 1000 {
		p, err := s.List(ctx, filter, nil, model.PageArgs{First: testutil.Ptr(model.MaxPageSize), After: after})
		if err != nil {
			t.Fatalf("List(%+v): %v", filter, err)
		}
		all = append(all, p.Nodes...)
		if !p.PageInfo.HasNextPage {
			return all
		}
		after = p.PageInfo.EndCursor()
	}
	t.Fatal("List never reached the last page")
	return nil
}

func ids(tasks []*model.Task) []int64 {
	out := make([]int64, len(tasks))
	for i, task := range tasks {
		out[i] = task.ID
	}
	return out
}
