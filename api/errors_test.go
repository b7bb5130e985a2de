package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
)

// leaks are what must never reach a client: SQL, driver messages, file
// paths and stack traces (CONTRACT §6).
var leaks = []string{
	"sql:", "SQL", "select", "SELECT", "database is closed", "no such table", "relation", "does not exist",
	"task\\\"", "pgx", "sqlite", ".go", "/", "goroutine", "panic", "nil pointer",
}

// every root field that reaches the database, with variables for it.
var databaseFields = []struct{ field, query string }{
	{"task", `{ task(id: "1") { id } }`},
	{"tasks", `{ tasks { nodes { id } } }`},
	{"tasks.totalCount", `{ tasks(first: 0) { totalCount } }`},
	{"taskStats", `{ taskStats { total } }`},
	{"createTask", `mutation { createTask(input: {title: "t"}) { id } }`},
	{"updateTask", `mutation { updateTask(id: "1", input: {title: "t"}) { id } }`},
	{"toggleTask", `mutation { toggleTask(id: "1") { id } }`},
	{"deleteTask", `mutation { deleteTask(id: "1") { id } }`},
	{"deleteCompletedTasks", `mutation { deleteCompletedTasks }`},
}

// TestDatabaseFailuresAreMaskedAndLogged breaks the database two ways and
// checks that each field answers the generic internal error with a request
// id, while the log holds the real cause under the same id.
func TestDatabaseFailuresAreMaskedAndLogged(t *testing.T) {
	breakages := []struct {
		name string
		// cause is what the log must show, per dialect.
		cause map[testutil.Dialect]string
		apply func(t *testing.T, srv *testServer)
	}{
		{
			name:  "database closed",
			cause: map[testutil.Dialect]string{testutil.SQLite: "database is closed", testutil.Postgres: "database is closed"},
			apply: func(t *testing.T, srv *testServer) {
				if err := srv.DB.Close(); err != nil {
					t.Fatalf("close: %v", err)
				}
			},
		},
		{
			name:  "task table dropped",
			cause: map[testutil.Dialect]string{testutil.SQLite: "no such table", testutil.Postgres: `relation "task" does not exist`},
			apply: func(t *testing.T, srv *testServer) {
				if _, err := srv.DB.ExecContext(context.Background(), "DROP TABLE task"); err != nil {
					t.Fatalf("drop table: %v", err)
				}
			},
		},
	}
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
				srv := newServer(t, d)
				token := mint(t, "alice")
				b.apply(t, srv)
				for _, f := range databaseFields {
					t.Run(f.field, func(t *testing.T) {
						r := srv.gql(t, token, f.query, nil)
						if r.Status != http.StatusOK {
							t.Fatalf("status %d, want 200 (an execution error): %s", r.Status, r.Body)
						}
						e := r.mustError(t, api.CodeInternal)
						wantMaskedInternalError(t, r, e)
						wantLogged(t, srv, r.Header.Get("X-Request-Id"), "internal error", b.cause[d])
					})
				}
			})
		})
	}
}

// TestPanicInResolverIsMaskedAndServerKeepsServing makes resolvers panic for
// real: with no task store, the first method call dereferences nil.
func TestPanicInResolverIsMaskedAndServerKeepsServing(t *testing.T) {
	t.Parallel()
	srv := newServerWith(t, nil, nil)
	alice := mint(t, "alice")

	// A panicking field fails alone; its sibling still answers.
	r := srv.gql(t, alice, `{ me { id } task(id: "1") { id } }`, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.Status, r.Body)
	}
	e := r.mustError(t, api.CodeInternal)
	wantMaskedInternalError(t, r, e)
	if len(e.Path) != 1 || e.Path[0] != "task" {
		t.Errorf("path = %v, want [task]", e.Path)
	}
	if want := `{"me":{"id":"alice"},"task":null}`; string(r.Data) != want {
		t.Errorf("data = %s, want %s", r.Data, want)
	}
	entries := wantLogged(t, srv, r.Header.Get("X-Request-Id"), "panic", "nil pointer dereference")
	if stack, _ := entries[0]["stack"].(string); !strings.Contains(stack, "goroutine") {
		t.Errorf("panic log has no stack: %v", entries[0])
	}

	// The same for mutations, many times and concurrently.
	t.Run("concurrent panics", func(t *testing.T) {
		for i := range 20 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				r := srv.gql(t, alice, `mutation { createTask(input: {title: "t"}) { id } }`, nil)
				if r.Status != http.StatusOK {
					t.Fatalf("status %d: %s", r.Status, r.Body)
				}
				wantMaskedInternalError(t, r, r.mustError(t, api.CodeInternal))
			})
		}
	})

	// The server still serves.
	var data struct{ Me struct{ ID string } }
	srv.gql(t, alice, `{ me { id } }`, nil).mustOK(t, &data)
	if data.Me.ID != "alice" {
		t.Errorf("after panics me.id = %q", data.Me.ID)
	}
	if h := srv.do(t, request{Method: http.MethodGet, Path: "/healthz"}); h.Status != http.StatusOK {
		t.Errorf("after panics /healthz = %d", h.Status)
	}
}

// wantMaskedInternalError checks e is the generic internal error whose
// request id is the response's X-Request-Id, and that nothing in the body
// tells of the cause.
func wantMaskedInternalError(t *testing.T, r *response, e gqlError) {
	t.Helper()
	if e.Message != "internal server error" {
		t.Errorf("message = %q, want exactly \"internal server error\"", e.Message)
	}
	id := r.Header.Get("X-Request-Id")
	if id == "" || e.Extensions["requestId"] != id {
		t.Errorf("extensions.requestId = %v, want the X-Request-Id header %q", e.Extensions["requestId"], id)
	}
	body := string(r.Body)
	for _, leak := range leaks {
		if strings.Contains(body, leak) {
			t.Errorf("body contains %q: %s", leak, body)
		}
	}
}

// wantLogged checks the log has a record msg for request id whose
// attributes mention cause, and returns the records of the request.
func wantLogged(t *testing.T, srv *testServer, id, msg, cause string) []map[string]any {
	t.Helper()
	var found []map[string]any
	for _, e := range srv.Log.Entries(t, "request_id", id) {
		if e["msg"] == msg {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		t.Fatalf("no %q log record with request_id %s in:\n%s", msg, id, srv.Log)
	}
	for _, e := range found {
		if strings.Contains(fmt.Sprint(e), cause) {
			return found
		}
	}
	t.Fatalf("the %q log records of request %s do not mention %q: %v", msg, id, cause, found)
	return nil
}
