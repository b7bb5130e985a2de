package model_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// recorder is a model.Publisher that records what the store publishes.
type recorder struct {
	// block, when set, holds Publish until it is closed.
	block chan struct{}
	// publishing, when set, is closed by the first Publish; Publish of a
	// task titled slowTitle takes 100ms, as if its goroutine were
	// preempted.
	publishing chan struct{}
	slowTitle  string

	mu        sync.Mutex
	published []*model.TaskChange
}

func (r *recorder) Publish(changes []*model.TaskChange) {
	if r.block != nil {
		<-r.block
	}
	if r.publishing != nil {
		close(r.publishing)
		r.publishing = nil
	}
	if r.slowTitle != "" && changes[0].Task.Title == r.slowTitle {
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = append(r.published, changes...)
}

// take returns and forgets what was published.
func (r *recorder) take() []*model.TaskChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.published
	r.published = nil
	return got
}

func TestStorePublishesEachCommittedChange(t *testing.T) {
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		rec := &recorder{}
		s.WriteWith(model.NewSerialWriter(rec))
		ctx := testutil.AsUser("alice")

		type want struct {
			kind model.ChangeKind
			task *model.Task
		}
		check := func(what string, wants ...want) {
			t.Helper()
			got := rec.take()
			if len(got) != len(wants) {
				t.Fatalf("%s published %d changes, want %d", what, len(got), len(wants))
			}
			for i, w := range wants {
				if got[i].Kind != w.kind || !reflect.DeepEqual(got[i].Task, w.task) {
					t.Fatalf("%s, change %d: got %s %+v, want %s %+v", what, i, got[i].Kind, got[i].Task, w.kind, w.task)
				}
			}
		}

		a := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "a"})
		check("Create", want{model.ChangeCreated, a})
		a, err := s.Update(ctx, idOf(a), model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("a2"))})
		if err != nil {
			t.Fatal(err)
		}
		check("Update", want{model.ChangeUpdated, a})
		a, err = s.Toggle(ctx, idOf(a))
		if err != nil {
			t.Fatal(err)
		}
		check("Toggle", want{model.ChangeUpdated, a})
		b := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "b", Completed: testutil.Ptr(true)})
		c := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "c"})
		rec.take()
		deleted, err := s.DeleteCompleted(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(deleted) != 2 {
			t.Fatalf("DeleteCompleted deleted %d, want 2", len(deleted))
		}
		// One per task, in id order, each as it was.
		check("DeleteCompleted", want{model.ChangeDeleted, a}, want{model.ChangeDeleted, b})
		gone, err := s.Delete(ctx, idOf(c))
		if err != nil {
			t.Fatal(err)
		}
		check("Delete", want{model.ChangeDeleted, gone})

		// What fails publishes nothing.
		if _, err := s.Create(ctx, model.CreateTaskInput{Title: ""}); err == nil {
			t.Fatal("Create with an empty title succeeded")
		}
		if _, err := s.Toggle(ctx, idOf(c)); model.ErrorCode(err) != model.ENOTFOUND {
			t.Fatalf("Toggle of a deleted task: %v", err)
		}
		if _, err := s.Delete(testutil.AsUser("bob"), idOf(a)); model.ErrorCode(err) != model.ENOTFOUND {
			t.Fatalf("Delete of a deleted task: %v", err)
		}
		if _, err := s.DeleteCompleted(ctx); err != nil {
			t.Fatal(err)
		}
		check("failed and empty mutations")
	})
}

func TestSQLiteWritersTakeTurns(t *testing.T) {
	db := testutil.NewDB(t, testutil.SQLite)
	s := newTasks(t, db)
	rec := &recorder{}
	s.WriteWith(model.NewSerialWriter(rec))
	ctx := testutil.AsUser("alice")

	// Many writers at once: none sees "database is locked", and changes
	// are published in commit order (ids are assigned in that order).
	const writers, each = 32, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.Create(ctx, model.CreateTaskInput{Title: "w"}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a concurrent write failed: %v", err)
	}
	got := rec.take()
	if len(got) != writers*each {
		t.Fatalf("published %d changes, want %d", len(got), writers*each)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Task.ID <= got[i-1].Task.ID {
			t.Fatalf("change %d (task %d) published after task %d: not in commit order", i, got[i].Task.ID, got[i-1].Task.ID)
		}
	}

	// A writer waiting its turn gives up when its context ends.
	rec.block = make(chan struct{})
	go s.Create(ctx, model.CreateTaskInput{Title: "holds the lock"})
	time.Sleep(50 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := s.Create(short, model.CreateTaskInput{Title: "waits"})
	close(rec.block)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a writer whose context ended while waiting: %v, want DeadlineExceeded", err)
	}
}

func TestSQLitePublishesInCommitOrderEvenWhenPublishIsSlow(t *testing.T) {
	db := testutil.NewDB(t, testutil.SQLite)
	s := newTasks(t, db)
	ctx := testutil.AsUser("alice")
	first := make(chan struct{})
	rec := &recorder{publishing: first, slowTitle: "first"}
	s.WriteWith(model.NewSerialWriter(rec))

	// The first writer has committed and is slow to publish; the second
	// commits after it and must not publish before it.
	done := make(chan error)
	go func() {
		_, err := s.Create(ctx, model.CreateTaskInput{Title: "first"})
		done <- err
	}()
	<-first
	if _, err := s.Create(ctx, model.CreateTaskInput{Title: "second"}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := rec.take()
	if len(got) != 2 || got[0].Task.Title != "first" || got[1].Task.Title != "second" {
		var titles []string
		for _, c := range got {
			titles = append(titles, c.Task.Title)
		}
		t.Fatalf("published %q, want [first second]: not in commit order", titles)
	}
}

func TestChangeKindGraphQL(t *testing.T) {
	for _, k := range []model.ChangeKind{model.ChangeCreated, model.ChangeUpdated, model.ChangeDeleted} {
		var buf bytes.Buffer
		k.MarshalGQL(&buf)
		if want := `"` + string(k) + `"`; buf.String() != want {
			t.Errorf("MarshalGQL(%s) = %s, want %s", k, buf.String(), want)
		}
		var back model.ChangeKind
		if err := back.UnmarshalGQL(string(k)); err != nil || back != k {
			t.Errorf("UnmarshalGQL(%q) = %q, %v", k, back, err)
		}
	}
	var k model.ChangeKind
	wantInvalid(t, k.UnmarshalGQL("EXPLODED"), "kind")
	wantInvalid(t, k.UnmarshalGQL(3), "kind")
}

// wrapping is a model.Writer that runs each mutation inside a statement
// of its own, as package postgres does, and records what it ran.
type wrapping struct {
	mu    sync.Mutex
	texts []string
}

func (w *wrapping) Write(ctx context.Context, m *model.Mutation) ([]*model.Task, error) {
	text := "WITH t AS (" + m.SQL() + ") SELECT t.*, t.id::text || " + m.Bind("-"+string(m.Kind())) + " FROM t ORDER BY t.id"
	w.mu.Lock()
	w.texts = append(w.texts, text)
	w.mu.Unlock()
	var tag string
	tasks, err := m.Run(ctx, m.DB().DB, text, &tag)
	if err == nil && len(tasks) > 0 && tag != strconv.FormatInt(tasks[len(tasks)-1].ID, 10)+"-"+string(m.Kind()) {
		return nil, fmt.Errorf("the extra column read %q", tag)
	}
	return tasks, err
}

func (w *wrapping) Create(ctx context.Context, c *model.Create) (*model.Task, error) {
	m, err := model.Insert([]*model.Create{c})
	if err != nil {
		return nil, err
	}
	tasks, err := w.Write(ctx, m)
	if err != nil {
		return nil, err
	}
	return tasks[0], nil
}

func TestAWriterRunsEachMutationInsideAStatementOfItsOwn(t *testing.T) {
	t.Parallel()
	db := testutil.NewDB(t, testutil.Postgres)
	s := newTasks(t, db)
	w := &wrapping{}
	s.WriteWith(w)
	ctx := testutil.AsUser("alice")

	created := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "a", Completed: testutil.Ptr(true)})
	sameTask(t, "stored task", rawRow(t, db, created.ID), created)
	mustCreate(t, s, ctx, model.CreateTaskInput{Title: "b", Completed: testutil.Ptr(true)})
	if _, err := s.Toggle(ctx, idOf(created)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, idOf(created), model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("renamed"))}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.DeleteCompleted(ctx)
	if err != nil || len(gone) != 1 || gone[0].Title != "b" {
		t.Fatalf("DeleteCompleted: %+v, %v", gone, err)
	}
	if _, err := s.Delete(ctx, idOf(created)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, idOf(created)); model.ErrorCode(err) != model.ENOTFOUND {
		t.Fatalf("second Delete: %v, want ENOTFOUND", err)
	}
	if n := len(w.texts); n != 7 {
		t.Fatalf("the writer ran %d statements, want one per mutation (7)", n)
	}
}

// widening is a model.Writer that tries to run a statement other than the
// mutation's: one that reaches every user's tasks.
type widening struct{}

func (widening) Write(ctx context.Context, m *model.Mutation) ([]*model.Task, error) {
	return m.Run(ctx, m.DB().DB, `DELETE FROM "task" RETURNING id, user_id, title, description, completed, created_at, updated_at`)
}

func (widening) Create(context.Context, *model.Create) (*model.Task, error) {
	return nil, errors.New("the widening writer creates nothing")
}

func TestAWriterCannotRunAStatementWithoutTheMutations(t *testing.T) {
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := model.NewTasks(db)
		alice, bob := testutil.AsUser("alice"), testutil.AsUser("bob")
		mustCreate(t, s, bob, model.CreateTaskInput{Title: "bob's"})
		s.WriteWith(widening{})
		if _, err := s.DeleteCompleted(alice); err == nil || !strings.Contains(err.Error(), "does not contain the mutation's own") {
			t.Fatalf("DeleteCompleted through a widening writer: %v, want a refusal", err)
		}
		if st, err := s.Stats(bob); err != nil || st.Total != 1 {
			t.Fatalf("bob's tasks after alice's refused mutation: %+v, %v", st, err)
		}
	})
}

// collecting is a model.Writer that keeps the creates it is given, to be
// inserted together.
type collecting struct {
	model.Writer
	creates []*model.Create
}

var errCollected = errors.New("collected")

func (w *collecting) Create(ctx context.Context, c *model.Create) (*model.Task, error) {
	w.creates = append(w.creates, c)
	return nil, errCollected
}

func TestInsertOwnsEachRowByItsOwnCaller(t *testing.T) {
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		w := &collecting{}
		s.WriteWith(w)
		users := []string{"alice", "bob", "carol"}
		for i, u := range users {
			if _, err := s.Create(testutil.AsUser(u), model.CreateTaskInput{Title: "of " + u, Completed: testutil.Ptr(i == 1)}); !errors.Is(err, errCollected) {
				t.Fatalf("Create: %v", err)
			}
		}
		m, err := model.Insert(w.creates)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Users(); !slices.Equal(got, users) {
			t.Fatalf("the insert acts for %q, want %q", got, users)
		}
		tasks, err := m.Run(context.Background(), db.DB, m.SQL())
		if err != nil {
			t.Fatal(err)
		}
		for i, task := range tasks {
			if task.UserID != users[i] || task.Title != "of "+users[i] || task.Completed != (i == 1) {
				t.Fatalf("row %d is %+v, want %s's task", i, task, users[i])
			}
			sameTask(t, "stored task", rawRow(t, db, task.ID), task)
		}
		if _, err := model.Insert(nil); err == nil {
			t.Fatal("Insert of no create succeeded")
		}
		other := &collecting{}
		s2 := model.NewTasks(db)
		s2.WriteWith(other)
		s2.Create(testutil.AsUser("dave"), model.CreateTaskInput{Title: "t"})
		if _, err := model.Insert(append(w.creates, other.creates...)); err == nil {
			t.Fatal("Insert of creates from two stores succeeded")
		}
	})
}
