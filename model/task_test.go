package model_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

func TestCreateStoresTrimmedInputAndDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		in            model.CreateTaskInput
		wantTitle     string
		wantDesc      *string
		wantCompleted bool
	}{
		{"title is trimmed", model.CreateTaskInput{Title: " \t Buy milk \n"}, "Buy milk", nil, false},
		{"nil description is null", model.CreateTaskInput{Title: "a"}, "a", nil, false},
		{"empty description is stored as null", model.CreateTaskInput{Title: "a", Description: testutil.Ptr("")}, "a", nil, false},
		{"white-space description is stored as null", model.CreateTaskInput{Title: "a", Description: testutil.Ptr(" \t\n ")}, "a", nil, false},
		{"description is trimmed", model.CreateTaskInput{Title: "a", Description: testutil.Ptr("  two litres \n")}, "a", testutil.Ptr("two litres"), false},
		{"inner white space is kept", model.CreateTaskInput{Title: "a  b\tc", Description: testutil.Ptr("x\n\ny")}, "a  b\tc", testutil.Ptr("x\n\ny"), false},
		{"completed defaults to false", model.CreateTaskInput{Title: "a", Completed: nil}, "a", nil, false},
		{"explicit completed false", model.CreateTaskInput{Title: "a", Completed: testutil.Ptr(false)}, "a", nil, false},
		{"explicit completed true", model.CreateTaskInput{Title: "a", Completed: testutil.Ptr(true)}, "a", nil, true},
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		seen := map[int64]bool{}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := mustCreate(t, s, ctx, tt.in)
				if got.ID <= 0 || seen[got.ID] {
					t.Fatalf("id = %d, want a new positive id", got.ID)
				}
				seen[got.ID] = true
				if got.UserID != "alice" {
					t.Errorf("UserID = %q, want alice", got.UserID)
				}
				if got.Title != tt.wantTitle {
					t.Errorf("Title = %q, want %q", got.Title, tt.wantTitle)
				}
				if !reflect.DeepEqual(got.Description, tt.wantDesc) {
					t.Errorf("Description = %v, want %v", show(got), tt.wantDesc)
				}
				if got.Completed != tt.wantCompleted {
					t.Errorf("Completed = %v, want %v", got.Completed, tt.wantCompleted)
				}
				// What Create returned is what the table holds and what Get reads.
				sameTask(t, "table row", rawRow(t, db, got.ID), got)
				sameTask(t, "Get", mustGet(t, s, ctx, idOf(got)), got)
			})
		}
	})
}

func TestGetFindsOnlyExistingTasksAndValidatesTheID(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		task := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "x", Description: testutil.Ptr("y")})
		sameTask(t, "Get", mustGet(t, s, ctx, idOf(task)), task)

		_, err := s.Get(ctx, "999999")
		wantCode(t, err, model.ENOTFOUND)
		_, err = s.Get(ctx, "9223372036854775807")
		wantCode(t, err, model.ENOTFOUND)
		_, err = s.Get(ctx, "1.0")
		wantInvalid(t, err, "id")
	})
}

func TestUpdateAppliesOnlyTheFieldsPresent(t *testing.T) {
	t.Parallel()
	type want struct {
		title     string
		desc      *string
		completed bool
	}
	tests := []struct {
		name string
		in   model.UpdateTaskInput
		want want
	}{
		{"absent fields are unchanged", model.UpdateTaskInput{},
			want{"original", testutil.Ptr("original description"), false}},
		{"title only, trimmed", model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("  renamed \t"))},
			want{"renamed", testutil.Ptr("original description"), false}},
		{"description null clears it", model.UpdateTaskInput{Description: graphql.OmittableOf[*string](nil)},
			want{"original", nil, false}},
		{"empty description clears it", model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr(""))},
			want{"original", nil, false}},
		{"white-space description clears it", model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr(" \n "))},
			want{"original", nil, false}},
		{"description set, trimmed", model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr(" new words "))},
			want{"original", testutil.Ptr("new words"), false}},
		{"completed true", model.UpdateTaskInput{Completed: graphql.OmittableOf(testutil.Ptr(true))},
			want{"original", testutil.Ptr("original description"), true}},
		{"completed false keeps it false", model.UpdateTaskInput{Completed: graphql.OmittableOf(testutil.Ptr(false))},
			want{"original", testutil.Ptr("original description"), false}},
		{"every field", model.UpdateTaskInput{
			Title:       graphql.OmittableOf(testutil.Ptr("t2")),
			Description: graphql.OmittableOf(testutil.Ptr("d2")),
			Completed:   graphql.OmittableOf(testutil.Ptr(true)),
		}, want{"t2", testutil.Ptr("d2"), true}},
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := mustCreate(t, s, ctx, model.CreateTaskInput{
					Title: "original", Description: testutil.Ptr("original description"),
				})
				time.Sleep(3 * time.Millisecond) // SQLite's clock has millisecond resolution
				got, err := s.Update(ctx, idOf(before), tt.in)
				if err != nil {
					t.Fatalf("Update: %v", err)
				}
				if got.ID != before.ID || got.UserID != "alice" || got.Title != tt.want.title ||
					!reflect.DeepEqual(got.Description, tt.want.desc) || got.Completed != tt.want.completed {
					t.Fatalf("Update returned %s, want title %q description %v completed %v",
						show(got), tt.want.title, tt.want.desc, tt.want.completed)
				}
				if !got.CreatedAt.Equal(before.CreatedAt) {
					t.Errorf("created_at changed from %v to %v", before.CreatedAt, got.CreatedAt)
				}
				if !got.UpdatedAt.After(before.UpdatedAt) {
					t.Errorf("updated_at %v is not after %v: every update, even an empty one, bumps it",
						got.UpdatedAt, before.UpdatedAt)
				}
				sameTask(t, "table row after Update", rawRow(t, db, got.ID), got)
			})
		}
	})
}

func TestUpdateRefusesInvalidInputAndLeavesTheRowUnchanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		id    string // "" means the task's own id
		in    model.UpdateTaskInput
		field string
	}{
		{"title null", "", model.UpdateTaskInput{Title: graphql.OmittableOf[*string](nil)}, "title"},
		{"empty title", "", model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr(""))}, "title"},
		{"white-space title", "", model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr(" \t "))}, "title"},
		{"title of 201 code points", "", model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr(strings.Repeat("é", 201)))}, "title"},
		{"NUL in title", "", model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("a\x00b"))}, "title"},
		{"completed null", "", model.UpdateTaskInput{Completed: graphql.OmittableOf[*bool](nil)}, "completed"},
		{"description of 1001 characters", "", model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr(strings.Repeat("d", 1001)))}, "description"},
		{"NUL in description", "", model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr("\x00"))}, "description"},
		{"valid fields do not rescue an invalid one", "", model.UpdateTaskInput{
			Description: graphql.OmittableOf(testutil.Ptr("fine")),
			Completed:   graphql.OmittableOf(testutil.Ptr(true)),
			Title:       graphql.OmittableOf[*string](nil),
		}, "title"},
		{"malformed id", "1e3", model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("x"))}, "id"},
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		task := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "keep", Description: testutil.Ptr("me")})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := tt.id
				if id == "" {
					id = idOf(task)
				}
				got, err := s.Update(ctx, id, tt.in)
				wantInvalid(t, err, tt.field)
				if got != nil {
					t.Errorf("Update returned %s with its error", show(got))
				}
				sameTask(t, "row after refused Update", rawRow(t, db, task.ID), task)
			})
		}
		_, err := s.Update(ctx, "424242", model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("x"))})
		wantCode(t, err, model.ENOTFOUND)
	})
}

func TestToggleFlipsCompletionAndNothingElse(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		prev := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "flip", Description: testutil.Ptr("me")})
		for i, want := range []bool{true, false, true} {
			time.Sleep(3 * time.Millisecond)
			got, err := s.Toggle(ctx, idOf(prev))
			if err != nil {
				t.Fatalf("Toggle #%d: %v", i+1, err)
			}
			if got.Completed != want {
				t.Fatalf("Toggle #%d: completed = %v, want %v", i+1, got.Completed, want)
			}
			if got.ID != prev.ID || got.Title != prev.Title || !reflect.DeepEqual(got.Description, prev.Description) ||
				!got.CreatedAt.Equal(prev.CreatedAt) {
				t.Fatalf("Toggle #%d changed more than completion: %s, was %s", i+1, show(got), show(prev))
			}
			if !got.UpdatedAt.After(prev.UpdatedAt) {
				t.Fatalf("Toggle #%d: updated_at %v is not after %v", i+1, got.UpdatedAt, prev.UpdatedAt)
			}
			sameTask(t, "Get after Toggle", mustGet(t, s, ctx, idOf(got)), got)
			prev = got
		}
		_, err := s.Toggle(ctx, "424242")
		wantCode(t, err, model.ENOTFOUND)
		_, err = s.Toggle(ctx, "-1")
		wantInvalid(t, err, "id")
	})
}

func TestDeleteReturnsTheTaskAsItWasAndRemovesOnlyIt(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		keep := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "keep"})
		victim := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "go", Description: testutil.Ptr("away"), Completed: testutil.Ptr(true)})
		time.Sleep(3 * time.Millisecond)
		victim, err := s.Update(ctx, idOf(victim), model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("gone"))})
		if err != nil {
			t.Fatal(err)
		}

		got, err := s.Delete(ctx, idOf(victim))
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		sameTask(t, "Delete's result", got, victim)

		_, err = s.Get(ctx, idOf(victim))
		wantCode(t, err, model.ENOTFOUND)
		if rawRow(t, db, victim.ID) != nil {
			t.Fatal("the deleted row is still in the table")
		}
		_, err = s.Delete(ctx, idOf(victim))
		wantCode(t, err, model.ENOTFOUND)
		_, err = s.Delete(ctx, "0")
		wantInvalid(t, err, "id")
		sameTask(t, "the other task", rawRow(t, db, keep.ID), keep)
	})
}

func TestDeleteCompletedRemovesOnlyTheViewersCompletedTasksInIDOrder(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		alice, bob := testutil.AsUser("alice"), testutil.AsUser("bob")

		got, err := s.DeleteCompleted(alice)
		if err != nil || len(got) != 0 {
			t.Fatalf("DeleteCompleted with no tasks = %v, %v; want none", got, err)
		}

		var active, done []*model.Task
		for i := range 8 {
			task := mustCreate(t, s, alice, model.CreateTaskInput{Title: fmt.Sprintf("t%d", 9-i), Completed: testutil.Ptr(i%2 == 0)})
			if task.Completed {
				done = append(done, task)
			} else {
				active = append(active, task)
			}
		}
		bobsDone := mustCreate(t, s, bob, model.CreateTaskInput{Title: "bob's", Completed: testutil.Ptr(true)})
		// Make the table's physical and index orders differ from id order,
		// so that the order of DELETE … RETURNING is not id order whichever
		// way the database finds the rows: titles and creation times run
		// backwards, and the first completed tasks are rewritten, which
		// stores their new versions last on PostgreSQL.
		base := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		for _, list := range [][]*model.Task{active, done} {
			for i, task := range list {
				setTimes(t, db, task.ID, base.Add(-time.Duration(task.ID)*time.Second), base)
				list[i] = rawRow(t, db, task.ID)
			}
		}
		for i, task := range done[:2] {
			time.Sleep(2 * time.Millisecond)
			updated, err := s.Update(alice, idOf(task), model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr("rewritten"))})
			if err != nil {
				t.Fatal(err)
			}
			done[i] = updated
		}

		got, err = s.DeleteCompleted(alice)
		if err != nil {
			t.Fatalf("DeleteCompleted: %v", err)
		}
		if !reflect.DeepEqual(ids(got), ids(done)) {
			t.Fatalf("DeleteCompleted returned ids %v, want %v (the completed ones, ascending)", ids(got), ids(done))
		}
		for i := range got {
			sameTask(t, "deleted task as it was", got[i], done[i])
		}
		if rows := rawRowsOf(t, db, "alice"); !reflect.DeepEqual(ids(rows), ids(active)) {
			t.Fatalf("alice's remaining rows %v, want the active ones %v", ids(rows), ids(active))
		}
		sameTask(t, "bob's completed task", rawRow(t, db, bobsDone.ID), bobsDone)

		got, err = s.DeleteCompleted(alice)
		if err != nil || len(got) != 0 {
			t.Fatalf("second DeleteCompleted = %v, %v; want none", ids(got), err)
		}
	})
}

func TestStatsCountTheViewersTasks(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		alice, bob := testutil.AsUser("alice"), testutil.AsUser("bob")
		check := func(ctx context.Context, want model.TaskStats) {
			t.Helper()
			got, err := s.Stats(ctx)
			if err != nil {
				t.Fatalf("Stats: %v", err)
			}
			if *got != want {
				t.Fatalf("Stats = %+v, want %+v", *got, want)
			}
		}
		check(alice, model.TaskStats{})
		var tasks []*model.Task
		for i := range 5 {
			tasks = append(tasks, mustCreate(t, s, alice, model.CreateTaskInput{Title: "t", Completed: testutil.Ptr(i < 2)}))
		}
		mustCreate(t, s, bob, model.CreateTaskInput{Title: "b", Completed: testutil.Ptr(true)})
		check(alice, model.TaskStats{Total: 5, Completed: 2, Active: 3})
		check(bob, model.TaskStats{Total: 1, Completed: 1, Active: 0})
		if _, err := s.Toggle(alice, idOf(tasks[4])); err != nil {
			t.Fatal(err)
		}
		check(alice, model.TaskStats{Total: 5, Completed: 3, Active: 2})
		if _, err := s.Delete(alice, idOf(tasks[0])); err != nil {
			t.Fatal(err)
		}
		check(alice, model.TaskStats{Total: 4, Completed: 2, Active: 2})
		if _, err := s.DeleteCompleted(alice); err != nil {
			t.Fatal(err)
		}
		check(alice, model.TaskStats{Total: 2, Completed: 0, Active: 2})
		check(bob, model.TaskStats{Total: 1, Completed: 1, Active: 0})
	})
}

func TestTimestampsAreDatabaseTimesInUTCThatReadBackIdentically(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")

		// checkReadBack compares a mutation's result with what Get and List
		// read afterwards: equal instants, in UTC, written identically.
		checkReadBack := func(what string, got *model.Task) {
			t.Helper()
			for _, tm := range []time.Time{got.CreatedAt, got.UpdatedAt} {
				if tm.Location() != time.UTC {
					t.Errorf("%s: time %v is in %v, want UTC", what, tm, tm.Location())
				}
				if d := time.Since(tm); d < -time.Minute || d > time.Minute {
					t.Errorf("%s: time %v is not the database's now", what, tm)
				}
			}
			fromGet := mustGet(t, s, ctx, idOf(got))
			var fromList *model.Task
			for _, task := range listAll(t, s, ctx, model.TaskFilter{}) {
				if task.ID == got.ID {
					fromList = task
				}
			}
			for _, read := range []struct {
				via  string
				task *model.Task
			}{{"Get", fromGet}, {"List", fromList}} {
				sameTask(t, what+" read back by "+read.via, read.task, got)
				for _, pair := range [][2]time.Time{{read.task.CreatedAt, got.CreatedAt}, {read.task.UpdatedAt, got.UpdatedAt}} {
					if pair[0].Location() != time.UTC {
						t.Errorf("%s: %s read %v in %v, want UTC", what, read.via, pair[0], pair[0].Location())
					}
					if wire(pair[0]) != wire(pair[1]) {
						t.Errorf("%s: %s reads %s, the mutation returned %s", what, read.via, wire(pair[0]), wire(pair[1]))
					}
				}
			}
		}

		created := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "times"})
		if created.CreatedAt.IsZero() || !created.CreatedAt.Equal(created.UpdatedAt) {
			t.Fatalf("after Create: created_at %v, updated_at %v; want equal database times", created.CreatedAt, created.UpdatedAt)
		}
		if wire(created.CreatedAt) != wire(created.UpdatedAt) {
			t.Fatalf("after Create: created_at %s, updated_at %s", wire(created.CreatedAt), wire(created.UpdatedAt))
		}
		checkReadBack("Create", created)

		prev := created
		steps := []struct {
			name string
			run  func() (*model.Task, error)
		}{
			{"Update title", func() (*model.Task, error) {
				return s.Update(ctx, idOf(created), model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("times 2"))})
			}},
			{"Toggle", func() (*model.Task, error) { return s.Toggle(ctx, idOf(created)) }},
			{"empty Update", func() (*model.Task, error) { return s.Update(ctx, idOf(created), model.UpdateTaskInput{}) }},
			{"Toggle back", func() (*model.Task, error) { return s.Toggle(ctx, idOf(created)) }},
			{"Update description", func() (*model.Task, error) {
				return s.Update(ctx, idOf(created), model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr("d"))})
			}},
		}
		for _, step := range steps {
			time.Sleep(3 * time.Millisecond)
			got, err := step.run()
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			if !got.CreatedAt.Equal(created.CreatedAt) {
				t.Fatalf("%s changed created_at from %v to %v", step.name, created.CreatedAt, got.CreatedAt)
			}
			if !got.UpdatedAt.After(prev.UpdatedAt) {
				t.Fatalf("%s: updated_at %v is not after the previous %v", step.name, got.UpdatedAt, prev.UpdatedAt)
			}
			checkReadBack(step.name, got)
			prev = got
		}

		deleted, err := s.Delete(ctx, idOf(created))
		if err != nil {
			t.Fatal(err)
		}
		sameTask(t, "Delete's result", deleted, prev)
		if wire(deleted.UpdatedAt) != wire(prev.UpdatedAt) || deleted.UpdatedAt.Location() != time.UTC {
			t.Fatalf("Delete returned updated_at %s, last read %s", wire(deleted.UpdatedAt), wire(prev.UpdatedAt))
		}
	})
}

func TestOneUserNeverSeesOrChangesAnothersTasks(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		alice, bob := testutil.AsUser("alice"), testutil.AsUser("bob")
		mine := mustCreate(t, s, alice, model.CreateTaskInput{Title: "shared word", Completed: testutil.Ptr(true)})
		bobsActive := mustCreate(t, s, bob, model.CreateTaskInput{Title: "shared word", Description: testutil.Ptr("bob")})
		bobsDone := mustCreate(t, s, bob, model.CreateTaskInput{Title: "shared word", Completed: testutil.Ptr(true)})
		bobsRows := rawRowsOf(t, db, "bob")

		_, missingErr := s.Get(alice, "999999")
		wantCode(t, missingErr, model.ENOTFOUND)
		for _, other := range []*model.Task{bobsActive, bobsDone} {
			id := idOf(other)
			for name, call := range map[string]func() (*model.Task, error){
				"Get": func() (*model.Task, error) { return s.Get(alice, id) },
				"Update": func() (*model.Task, error) {
					return s.Update(alice, id, model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("hacked"))})
				},
				"empty Update": func() (*model.Task, error) { return s.Update(alice, id, model.UpdateTaskInput{}) },
				"Toggle":       func() (*model.Task, error) { return s.Toggle(alice, id) },
				"Delete":       func() (*model.Task, error) { return s.Delete(alice, id) },
			} {
				got, err := call()
				wantCode(t, err, model.ENOTFOUND)
				if got != nil {
					t.Errorf("%s of another user's task returned %s", name, show(got))
				}
				if err.Error() != missingErr.Error() {
					t.Errorf("%s: another user's task gives %q, a missing one %q: they must be indistinguishable", name, err, missingErr)
				}
			}
		}

		page, err := s.List(alice, model.TaskFilter{Search: testutil.Ptr("shared")}, nil, model.PageArgs{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids(page.Nodes), []int64{mine.ID}) {
			t.Errorf("alice's List = %v, want only her task %d", ids(page.Nodes), mine.ID)
		}
		if n, err := s.Count(alice, model.TaskFilter{}); err != nil || n != 1 {
			t.Errorf("alice's Count = %d, %v; want 1", n, err)
		}
		if st, err := s.Stats(alice); err != nil || *st != (model.TaskStats{Total: 1, Completed: 1}) {
			t.Errorf("alice's Stats = %+v, %v; want 1 completed", st, err)
		}
		deleted, err := s.DeleteCompleted(alice)
		if err != nil || !reflect.DeepEqual(ids(deleted), []int64{mine.ID}) {
			t.Errorf("alice's DeleteCompleted = %v, %v; want only %d", ids(deleted), err, mine.ID)
		}

		after := rawRowsOf(t, db, "bob")
		if len(after) != len(bobsRows) {
			t.Fatalf("bob has %d rows, had %d", len(after), len(bobsRows))
		}
		for i := range after {
			sameTask(t, "bob's row", after[i], bobsRows[i])
		}
	})
}

func TestEveryMethodWithoutAUserIsUnauthenticatedAndTouchesNothing(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		alice := testutil.AsUser("alice")
		task := mustCreate(t, s, alice, model.CreateTaskInput{Title: "x", Completed: testutil.Ptr(true)})
		id := idOf(task)
		before := rawRows(t, db)

		calls := map[string]func(ctx context.Context) error{
			"Get":                     func(ctx context.Context) error { _, err := s.Get(ctx, id); return err },
			"Get with a malformed id": func(ctx context.Context) error { _, err := s.Get(ctx, "abc"); return err },
			"Create": func(ctx context.Context) error {
				_, err := s.Create(ctx, model.CreateTaskInput{Title: "new"})
				return err
			},
			"Create with an invalid title": func(ctx context.Context) error {
				_, err := s.Create(ctx, model.CreateTaskInput{Title: ""})
				return err
			},
			"Update": func(ctx context.Context) error {
				_, err := s.Update(ctx, id, model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("changed"))})
				return err
			},
			"Toggle":          func(ctx context.Context) error { _, err := s.Toggle(ctx, id); return err },
			"Delete":          func(ctx context.Context) error { _, err := s.Delete(ctx, id); return err },
			"DeleteCompleted": func(ctx context.Context) error { _, err := s.DeleteCompleted(ctx); return err },
			"Stats":           func(ctx context.Context) error { _, err := s.Stats(ctx); return err },
			"List": func(ctx context.Context) error {
				_, err := s.List(ctx, model.TaskFilter{}, nil, model.PageArgs{})
				return err
			},
			"Count": func(ctx context.Context) error { _, err := s.Count(ctx, model.TaskFilter{}); return err },
		}
		contexts := map[string]context.Context{
			"no viewer":         context.Background(),
			"viewer with no id": model.NewContext(context.Background(), model.Viewer{Email: "a@example.com"}),
		}
		for cname, ctx := range contexts {
			for name, call := range calls {
				if err := call(ctx); model.ErrorCode(err) != model.EUNAUTHENTICATED {
					t.Errorf("%s with %s: error = %v, want EUNAUTHENTICATED", name, cname, err)
				}
			}
		}
		after := rawRows(t, db)
		if len(after) != len(before) {
			t.Fatalf("the table has %d rows, had %d", len(after), len(before))
		}
		for i := range after {
			sameTask(t, "row", after[i], before[i])
		}
	})
}

func TestViewerRoundTripsThroughTheContext(t *testing.T) {
	t.Parallel()
	v := model.Viewer{ID: "u1", Email: "e@example.com", Name: "E"}
	got, ok := model.ViewerFromContext(model.NewContext(context.Background(), v))
	if !ok || got != v {
		t.Fatalf("ViewerFromContext = %+v, %v; want %+v, true", got, ok, v)
	}
	if _, ok := model.ViewerFromContext(context.Background()); ok {
		t.Fatal("ViewerFromContext found a viewer in an empty context")
	}
}

func TestTitleAndDescriptionLimitsCountCodePoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in       model.CreateTaskInput
		badField string // "" means accepted
	}{
		{"empty title", model.CreateTaskInput{Title: ""}, "title"},
		{"white-space-only title", model.CreateTaskInput{Title: " \t\r\n\u00a0\u3000"}, "title"},
		{"201 ASCII characters", model.CreateTaskInput{Title: strings.Repeat("a", 201)}, "title"},
		{"201 two-byte code points", model.CreateTaskInput{Title: strings.Repeat("é", 201)}, "title"},
		{"201 emoji", model.CreateTaskInput{Title: strings.Repeat("😀", 201)}, "title"},
		{"NUL in title", model.CreateTaskInput{Title: "a\x00b"}, "title"},
		{"invalid UTF-8 in title", model.CreateTaskInput{Title: "a\xffb"}, "title"},
		{"200 ASCII characters", model.CreateTaskInput{Title: strings.Repeat("a", 200)}, ""},
		{"200 two-byte code points", model.CreateTaskInput{Title: strings.Repeat("é", 200)}, ""},
		{"200 code points of CJK", model.CreateTaskInput{Title: strings.Repeat("日本", 100)}, ""},
		{"200 emoji (800 bytes)", model.CreateTaskInput{Title: strings.Repeat("😀", 200)}, ""},
		{"200 code points with white space around", model.CreateTaskInput{Title: "  \t" + strings.Repeat("ü", 200) + "\n "}, ""},
		{"1001-character description", model.CreateTaskInput{Title: "t", Description: testutil.Ptr(strings.Repeat("d", 1001))}, "description"},
		{"1001 multi-byte description", model.CreateTaskInput{Title: "t", Description: testutil.Ptr(strings.Repeat("日", 1001))}, "description"},
		{"NUL in description", model.CreateTaskInput{Title: "t", Description: testutil.Ptr("x\x00")}, "description"},
		{"1000-character description", model.CreateTaskInput{Title: "t", Description: testutil.Ptr(strings.Repeat("d", 1000))}, ""},
		{"1000 emoji description", model.CreateTaskInput{Title: "t", Description: testutil.Ptr(strings.Repeat("🚀", 1000))}, ""},
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n := len(rawRows(t, db))
				got, err := s.Create(ctx, tt.in)
				if tt.badField != "" {
					wantInvalid(t, err, tt.badField)
					if got != nil || len(rawRows(t, db)) != n {
						t.Fatal("a refused Create inserted a row")
					}
					return
				}
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				wantTitle := strings.TrimSpace(tt.in.Title)
				if got.Title != wantTitle || utf8.RuneCountInString(got.Title) != utf8.RuneCountInString(wantTitle) {
					t.Fatalf("stored title %q, want %q", got.Title, wantTitle)
				}
				if tt.in.Description != nil && (got.Description == nil || *got.Description != *tt.in.Description) {
					t.Fatalf("stored description differs from %q", *tt.in.Description)
				}
				sameTask(t, "table row", rawRow(t, db, got.ID), got)
				sameTask(t, "Get", mustGet(t, s, ctx, idOf(got)), got)
			})
		}
	})
}

func TestParseIDAcceptsOnlyCanonicalPositiveDecimals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64 // 0 means invalid
	}{
		{"abc", 0}, {"1.5", 0}, {"", 0}, {"0x10", 0}, {"1e3", 0}, {"007", 0}, {"+7", 0},
		{"-1", 0}, {"0", 0}, {"99999999999999999999", 0}, {"9223372036854775808", 0},
		{" 1", 0}, {"1 ", 0}, {"1\x00", 0}, {"١", 0}, {"1_000", 0},
		{"1", 1}, {"42", 42}, {"9223372036854775807", 9223372036854775807},
	}
	for _, tt := range tests {
		got, err := model.ParseID("taskId", tt.in)
		if tt.want == 0 {
			wantInvalid(t, err, "taskId")
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseID(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestHostileStringsAreStoredVerbatim(t *testing.T) {
	t.Parallel()
	hostile := []string{
		`'; DROP TABLE task; --`,
		`Robert'); DROP TABLE task;--`,
		`\`,
		`\\`,
		`\'`,
		`'\''`,
		`a\nb`,
		`"double" and 'single' quotes`,
		"back`tick`",
		`? ?? $1 :name @p`,
		`?0 ?1 ?TableName`,
		`%_!\%`,
		`E'\x41'`,
		`/* comment */ -- line`,
		`$$dollar$$`,
		"tab\tnew\nline",
		"😀 日本語 é ü ß",
		"\u202eRTL override",
		"zero\u200bwidth",
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		var created []*model.Task
		for _, h := range hostile {
			task := mustCreate(t, s, ctx, model.CreateTaskInput{Title: h, Description: testutil.Ptr("desc " + h)})
			if task.Title != h || task.Description == nil || *task.Description != "desc "+h {
				t.Fatalf("Create(%q) stored %s", h, show(task))
			}
			sameTask(t, "row of "+h, rawRow(t, db, task.ID), task)
			sameTask(t, "Get of "+h, mustGet(t, s, ctx, idOf(task)), task)
			created = append(created, task)
		}
		for i, h := range hostile {
			upd, err := s.Update(ctx, idOf(created[i]), model.UpdateTaskInput{Description: graphql.OmittableOf(testutil.Ptr(h))})
			if err != nil || *upd.Description != h {
				t.Fatalf("Update description to %q: %v, %v", h, upd, err)
			}
			// Searching for the string finds the task: it is matched as text.
			found := listAll(t, s, ctx, model.TaskFilter{Search: testutil.Ptr(h)})
			var hit bool
			for _, f := range found {
				hit = hit || f.ID == upd.ID
				if !strings.Contains(strings.ToLower(f.Title), strings.ToLower(h)) &&
					!strings.Contains(strings.ToLower(*f.Description), strings.ToLower(h)) {
					t.Errorf("search %q found %s", h, show(f))
				}
			}
			if !hit {
				t.Errorf("search %q did not find its task", h)
			}
		}
		if rows := rawRows(t, db); len(rows) != len(hostile) {
			t.Fatalf("the table holds %d rows, want %d", len(rows), len(hostile))
		}
	})
}
