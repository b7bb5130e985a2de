package model_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/taskql/server/database"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// tableNames lists the tables of the database's current schema.
func tableNames(t *testing.T, db *bun.DB) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if isPG(db) {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	var names []string
	if err := db.NewRaw(q).Scan(context.Background(), &names); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	slices.Sort(names)
	return names
}

// taskIndexNames lists the indexes on the task table.
func taskIndexNames(t *testing.T, db *bun.DB) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'task' AND name NOT LIKE 'sqlite_%'`
	if isPG(db) {
		q = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'task' AND indexname <> 'task_pkey'`
	}
	var names []string
	if err := db.NewRaw(q).Scan(context.Background(), &names); err != nil {
		t.Fatalf("list indexes: %v", err)
	}
	slices.Sort(names)
	return names
}

var wantTaskIndexes = []string{
	"ix_task_completed", "ix_task_user_created", "ix_task_user_id", "ix_task_user_title", "ix_task_user_updated",
}

func TestCreateSchemaIsIdempotentKeepsDataAndCreatesOnlyTheTaskTable(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := newTasks(t, db)
		task := mustCreate(t, s, testutil.AsUser("alice"), model.CreateTaskInput{Title: "survives", Completed: testutil.Ptr(true)})
		for i := range 2 {
			if err := model.CreateSchema(ctx, db); err != nil {
				t.Fatalf("CreateSchema again (#%d): %v", i+2, err)
			}
		}
		sameTask(t, "task after CreateSchema", mustGet(t, s, testutil.AsUser("alice"), idOf(task)), task)
		if got := tableNames(t, db); !slices.Equal(got, []string{"task"}) {
			t.Fatalf("tables %v, want only task (the user table belongs to the auth service)", got)
		}
		if got := taskIndexNames(t, db); !slices.Equal(got, wantTaskIndexes) {
			t.Fatalf("indexes %v, want %v", got, wantTaskIndexes)
		}
	})
}

func TestCreateSchemaLeavesAnExistingUserTableAlone(t *testing.T) {
	t.Parallel()
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		db := testutil.OpenEmpty(t, d)
		testutil.CreateUserTable(t, db)
		users := model.NewUsers(db)
		if err := users.Create(context.Background(), &model.User{ID: "u1", Name: "Ann", Email: "ann@example.com"}); err != nil {
			t.Fatal(err)
		}
		if err := model.CreateSchema(context.Background(), db); err != nil {
			t.Fatal(err)
		}
		if got := tableNames(t, db); !slices.Equal(got, []string{"task", "user"}) {
			t.Fatalf("tables %v, want task and user", got)
		}
		if u, err := users.ByID(context.Background(), "u1"); err != nil || u.Email != "ann@example.com" {
			t.Fatalf("user after CreateSchema: %v, %v", u, err)
		}
	})
}

func TestTaskColumnsHaveTheContractTypesOnPostgres(t *testing.T) {
	t.Parallel()
	if !slices.Contains(testutil.Dialects(), testutil.Postgres) {
		t.Skip("TEST_DATABASE_URL is not set")
	}
	db := testutil.NewDB(t, testutil.Postgres)
	var cols []struct {
		Name     string `bun:"column_name"`
		Type     string `bun:"data_type"`
		Length   *int   `bun:"character_maximum_length"`
		Nullable string `bun:"is_nullable"`
		Default  *string
	}
	err := db.NewRaw(`SELECT column_name, data_type, character_maximum_length, is_nullable, column_default AS default
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'task'
		ORDER BY ordinal_position`).Scan(context.Background(), &cols)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cols {
		s := c.Name + " " + c.Type
		if c.Length != nil {
			s += fmt.Sprintf("(%d)", *c.Length)
		}
		if c.Nullable == "NO" {
			s += " not null"
		}
		if c.Default != nil && !strings.HasPrefix(*c.Default, "nextval(") {
			s += " default " + *c.Default
		}
		got = append(got, s)
	}
	want := []string{
		"id integer not null",
		"user_id character varying not null",
		"title character varying(200) not null",
		"description character varying(1000)",
		"completed boolean not null default false",
		"created_at timestamp with time zone not null default now()",
		"updated_at timestamp with time zone not null default now()",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("task columns:\n got  %q\n want %q", got, want)
	}
}

func TestConcurrentBootsOnAnEmptyDatabaseAllCreateTheSchema(t *testing.T) {
	t.Parallel()
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		url := testutil.URL(t, d)
		const instances = 8
		var wg sync.WaitGroup
		errs := make([]error, instances)
		dbs := make([]*bun.DB, instances)
		start := make(chan struct{})
		for i := range instances {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				db, err := database.Open(ctx, database.Config{URL: url, MaxOpenConns: 2})
				if err != nil {
					errs[i] = err
					return
				}
				dbs[i] = db
				<-start
				errs[i] = model.CreateSchema(ctx, db)
			})
		}
		time.Sleep(50 * time.Millisecond) // let every instance connect first
		close(start)
		wg.Wait()
		t.Cleanup(func() {
			for _, db := range dbs {
				if db != nil {
					db.Close()
				}
			}
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("instance %d: %v", i, err)
			}
		}
		if t.Failed() {
			return
		}
		if got := taskIndexNames(t, dbs[0]); !slices.Equal(got, wantTaskIndexes) {
			t.Fatalf("indexes %v, want %v", got, wantTaskIndexes)
		}
		if got := tableNames(t, dbs[0]); !slices.Equal(got, []string{"task"}) {
			t.Fatalf("tables %v, want only task", got)
		}
		// Every instance works against the one table.
		for i, db := range dbs {
			mustCreate(t, newTasks(t, db), testutil.AsUser("alice"), model.CreateTaskInput{Title: fmt.Sprint(i)})
		}
		if n := len(rawRows(t, dbs[0])); n != instances {
			t.Fatalf("%d rows, want %d", n, instances)
		}
	})
}

func TestSQLiteConcurrentWritersNeverFailWithDatabaseLocked(t *testing.T) {
	t.Parallel()
	db := testutil.NewDB(t, testutil.SQLite)
	s := newTasks(t, db)
	const writers = 32
	var wg sync.WaitGroup
	errs := make(chan error, 4*writers)
	start := make(chan struct{})
	for i := range writers {
		ctx := testutil.AsUser(fmt.Sprintf("user%d", i%4))
		wg.Go(func() {
			<-start
			task, err := s.Create(ctx, model.CreateTaskInput{Title: fmt.Sprintf("task %d", i)})
			if err != nil {
				errs <- fmt.Errorf("Create %d: %w", i, err)
				return
			}
			// Mixed reads and read-then-write transactions, as a server does.
			if _, err := s.List(ctx, model.TaskFilter{}, nil, model.PageArgs{}); err != nil {
				errs <- fmt.Errorf("List %d: %w", i, err)
			}
			if _, err := s.Toggle(ctx, idOf(task)); err != nil {
				errs <- fmt.Errorf("Toggle %d: %w", i, err)
			}
			if _, err := s.Stats(ctx); err != nil {
				errs <- fmt.Errorf("Stats %d: %w", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rows := rawRows(t, db)
	if len(rows) != writers {
		t.Fatalf("%d rows, want %d", len(rows), writers)
	}
	for _, r := range rows {
		if !r.Completed {
			t.Fatalf("task %d was not toggled", r.ID)
		}
	}
}

func TestUsersConflictOnDuplicateEmailAndAreFoundByID(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		testutil.CreateUserTable(t, db)
		users := model.NewUsers(db)

		ann := &model.User{ID: "u1", Name: "Ann", Email: "ann@example.com"}
		if err := users.Create(ctx, ann); err != nil {
			t.Fatalf("Create: %v", err)
		}
		got, err := users.ByID(ctx, "u1")
		if err != nil {
			t.Fatalf("ByID: %v", err)
		}
		if got.ID != "u1" || got.Name != "Ann" || got.Email != "ann@example.com" || got.CreatedAt.IsZero() {
			t.Fatalf("ByID = %+v", got)
		}
		// A zero createdAt is left to the column's default and read back.
		if ann.CreatedAt.IsZero() || !ann.CreatedAt.Equal(got.CreatedAt) {
			t.Fatalf("Create set createdAt %v, the table holds %v", ann.CreatedAt, got.CreatedAt)
		}

		created := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
		if err := users.Create(ctx, &model.User{ID: "u3", Name: "Cy", Email: "cy@example.com", CreatedAt: created}); err != nil {
			t.Fatalf("Create with createdAt: %v", err)
		}
		if got, err := users.ByID(ctx, "u3"); err != nil || !got.CreatedAt.Equal(created) {
			t.Fatalf("ByID(u3) = %+v, %v; want createdAt %v", got, err, created)
		}

		err = users.Create(ctx, &model.User{ID: "u2", Name: "Other Ann", Email: "ann@example.com"})
		var conflict *model.Error
		if !errors.As(err, &conflict) || conflict.Code != model.ECONFLICT {
			t.Fatalf("duplicate email: error = %v (%T), want an ECONFLICT *model.Error", err, err)
		}
		if conflict.Field != "email" || conflict.Error() == "" || conflict.Unwrap() == nil {
			t.Fatalf("conflict = %+v, want Field email, a message and the database error", conflict)
		}
		if strings.Contains(conflict.Error(), "INSERT") || strings.Contains(conflict.Error(), "constraint") {
			t.Fatalf("conflict message %q leaks SQL", conflict.Error())
		}
		if _, err := users.ByID(ctx, "u2"); model.ErrorCode(err) != model.ENOTFOUND {
			t.Fatalf("the refused user exists: %v", err)
		}
		if _, err := users.ByID(ctx, "nobody"); model.ErrorCode(err) != model.ENOTFOUND {
			t.Fatalf("ByID(nobody) = %v, want ENOTFOUND", err)
		}
	})
}

func TestUsersWithoutTheUserTableFailWithoutAConflict(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		users := model.NewUsers(db)
		err := users.Create(context.Background(), &model.User{ID: "u1", Name: "Ann", Email: "a@example.com"})
		if err == nil || model.ErrorCode(err) != model.EINTERNAL {
			t.Fatalf("Create without a user table = %v, want a plain error", err)
		}
		if _, err := users.ByID(context.Background(), "u1"); err == nil || model.ErrorCode(err) != model.EINTERNAL {
			t.Fatalf("ByID without a user table = %v, want an internal error", err)
		}
	})
}

func TestDatabaseFailuresAreErrorsNotMissingTasks(t *testing.T) {
	t.Parallel()
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		db := testutil.NewDB(t, d)
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		task := mustCreate(t, s, ctx, model.CreateTaskInput{Title: "x"})
		id := idOf(task)
		db.Close()

		calls := map[string]func() error{
			"Get":             func() error { _, err := s.Get(ctx, id); return err },
			"Create":          func() error { _, err := s.Create(ctx, model.CreateTaskInput{Title: "y"}); return err },
			"Update":          func() error { _, err := s.Update(ctx, id, model.UpdateTaskInput{}); return err },
			"Toggle":          func() error { _, err := s.Toggle(ctx, id); return err },
			"Delete":          func() error { _, err := s.Delete(ctx, id); return err },
			"DeleteCompleted": func() error { _, err := s.DeleteCompleted(ctx); return err },
			"Stats":           func() error { _, err := s.Stats(ctx); return err },
			"List":            func() error { _, err := s.List(ctx, model.TaskFilter{}, nil, model.PageArgs{}); return err },
			"Count":           func() error { _, err := s.Count(ctx, model.TaskFilter{}); return err },
			"CreateSchema":    func() error { return model.CreateSchema(context.Background(), db) },
			"Users.ByID":      func() error { _, err := model.NewUsers(db).ByID(ctx, "u"); return err },
			"Users.Create": func() error {
				return model.NewUsers(db).Create(ctx, &model.User{ID: "u", Name: "n", Email: "e"})
			},
		}
		for name, call := range calls {
			err := call()
			if model.ErrorCode(err) != model.EINTERNAL {
				t.Errorf("%s on a closed database = %v, want an internal error", name, err)
			}
		}
	})
}
