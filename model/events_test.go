package model_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// recorder is a model.Publisher that records what the store publishes,
// and checks that PublishTx runs inside the transaction that made the
// changes.
type recorder struct {
	t *testing.T
	// failTx, when set, is returned by PublishTx.
	failTx error
	// block, when set, holds PublishTx until it is closed.
	block chan struct{}
	// inTxHook, when set, is called by PublishTx; Publish of a task
	// titled slowTitle takes 100ms, as if its goroutine were preempted.
	inTxHook  func()
	slowTitle string

	mu        sync.Mutex
	inTx      []*model.TaskChange
	published []*model.TaskChange
}

func (r *recorder) PublishTx(ctx context.Context, tx bun.Tx, changes []*model.TaskChange) error {
	if r.block != nil {
		<-r.block
	}
	for _, c := range changes {
		// The transaction sees its own write: a created or updated row
		// is there, a deleted one is gone.
		n, err := tx.NewSelect().Model((*model.Task)(nil)).Where("id = ?", c.Task.ID).Count(ctx)
		if err != nil {
			r.t.Errorf("PublishTx: query in the transaction: %v", err)
		}
		if want := map[bool]int64{true: 0, false: 1}[c.Kind == model.ChangeDeleted]; n != want {
			r.t.Errorf("PublishTx of %s task %d: the transaction has %d such rows, want %d", c.Kind, c.Task.ID, n, want)
		}
	}
	if r.inTxHook != nil {
		r.inTxHook()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inTx = append(r.inTx, changes...)
	return r.failTx
}

func (r *recorder) Publish(changes []*model.TaskChange) {
	if r.slowTitle != "" && changes[0].Task.Title == r.slowTitle {
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = append(r.published, changes...)
}

// take returns and forgets what was published after commit, checking that
// PublishTx saw the same.
func (r *recorder) take() []*model.TaskChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.published
	if !reflect.DeepEqual(r.inTx, got) {
		r.t.Errorf("PublishTx saw %d changes, Publish %d", len(r.inTx), len(got))
	}
	r.inTx, r.published = nil, nil
	return got
}

func TestStorePublishesEachCommittedChange(t *testing.T) {
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		rec := &recorder{t: t}
		s.PublishTo(rec)
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

func TestStoreRollsBackWhenPublishingFails(t *testing.T) {
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		rec := &recorder{t: t, failTx: errors.New("bus down")}
		s.PublishTo(rec)
		ctx := testutil.AsUser("alice")
		_, err := s.Create(ctx, model.CreateTaskInput{Title: "never"})
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("bus down")) {
			t.Fatalf("Create: %v, want the publisher's error", err)
		}
		rec.mu.Lock()
		published := len(rec.published)
		rec.mu.Unlock()
		if published != 0 {
			t.Fatalf("a rolled-back change reached Publish")
		}
		if st, err := s.Stats(ctx); err != nil || st.Total != 0 {
			t.Fatalf("the task was kept: %+v, %v", st, err)
		}
	})
}

func TestSQLiteWritersTakeTurns(t *testing.T) {
	db := testutil.NewDB(t, testutil.SQLite)
	s := newTasks(t, db)
	rec := &recorder{t: t}
	s.PublishTo(rec)
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
	rec := &recorder{t: t, slowTitle: "first"}
	rec.inTxHook = func() {
		rec.inTxHook = nil // the first writer only; the second waits for the lock
		close(first)
	}
	s.PublishTo(rec)

	// The first writer is about to commit, then slow to publish; the
	// second commits after it and must not publish before it.
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

// statementRecorder is a model.StatementPublisher that publishes within the
// statement for every user but declined, whose changes take the
// transaction (recorded by the embedded recorder).
type statementRecorder struct {
	*recorder
	declined string

	mu    sync.Mutex
	exprs int
}

func (r *statementRecorder) PublishExpr(kind model.ChangeKind, userID, row string, bind func(any) string) (string, bool) {
	if userID == r.declined {
		return "", false
	}
	r.mu.Lock()
	r.exprs++
	r.mu.Unlock()
	// A value of the row and a bound value, as pg_notify's would be.
	return "(" + row + ".id::text || " + bind(string(kind)) + "::text)", true
}

func TestAStatementPublisherPublishesWithinEachMutation(t *testing.T) {
	t.Parallel()
	db := testutil.NewDB(t, testutil.Postgres)
	s := newTasks(t, db)
	r := &statementRecorder{recorder: &recorder{t: t}, declined: "declined"}
	s.PublishTo(r)
	ctx := testutil.AsUser("alice")

	// Concurrent creates, grouped into shared statements: each caller gets
	// its own task, and every task is stored.
	const n = 60
	created := make([]*model.Task, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = s.Create(ctx, model.CreateTaskInput{Title: "task " + strconv.Itoa(i), Completed: testutil.Ptr(i%2 == 0)})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, task := range created {
		if task.Title != "task "+strconv.Itoa(i) || task.UserID != "alice" || task.Completed != (i%2 == 0) {
			t.Fatalf("create %d returned %+v", i, task)
		}
		sameTask(t, "stored task", rawRow(t, db, task.ID), task)
	}

	toggled, err := s.Toggle(ctx, idOf(created[1]))
	if err != nil || !toggled.Completed {
		t.Fatalf("Toggle: %+v, %v", toggled, err)
	}
	updated, err := s.Update(ctx, idOf(created[1]), model.UpdateTaskInput{Title: graphql.OmittableOf(testutil.Ptr("renamed"))})
	if err != nil || updated.Title != "renamed" {
		t.Fatalf("Update: %+v, %v", updated, err)
	}
	deleted, err := s.Delete(ctx, idOf(created[3]))
	if err != nil || deleted.ID != created[3].ID {
		t.Fatalf("Delete: %+v, %v", deleted, err)
	}
	if _, err := s.Delete(ctx, idOf(created[3])); model.ErrorCode(err) != model.ENOTFOUND {
		t.Fatalf("second Delete: %v, want ENOTFOUND", err)
	}
	gone, err := s.DeleteCompleted(ctx)
	if err != nil || len(gone) != n/2+1 {
		t.Fatalf("DeleteCompleted: %d tasks, %v; want %d", len(gone), err, n/2+1)
	}
	for i := 1; i < len(gone); i++ {
		if gone[i-1].ID >= gone[i].ID {
			t.Fatalf("DeleteCompleted returned ids out of order: %v", ids(gone))
		}
	}
	if got := r.take(); len(got) != 0 {
		t.Fatalf("%d changes took the transaction; all fit the statement", len(got))
	}
	r.mu.Lock()
	exprs := r.exprs
	r.mu.Unlock()
	// At least one statement of creates, then five more statements.
	if exprs < 6 {
		t.Fatalf("PublishExpr called %d times, want once per mutation statement (6 or more)", exprs)
	}

	// A user the publisher declines: the transaction and Publish.
	other := testutil.AsUser("declined")
	task := mustCreate(t, s, other, model.CreateTaskInput{Title: "long"})
	got := r.take()
	if len(got) != 1 || got[0].Kind != model.ChangeCreated || !reflect.DeepEqual(got[0].Task, task) {
		t.Fatalf("declined user's create published %+v, want CREATED %+v", got, task)
	}
}
