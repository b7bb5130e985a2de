package api_test

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// TestUsersNeverSeeOrChangeEachOthersTasks runs every query and mutation as
// bob against alice's tasks: each must behave as if they did not exist,
// and alice's tasks must come out unchanged (CONTRACT §4).
func TestUsersNeverSeeOrChangeEachOthersTasks(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice, bob := mint(t, "alice"), mint(t, "bob")
		aliceOpen := srv.createTask(t, alice, "alice secret plan", false)
		aliceDone := srv.createTask(t, alice, "alice finished plan", true)
		bobOwn := srv.createTask(t, bob, "bob errand", true)

		t.Run("task(id:) of another user is null", func(t *testing.T) {
			for _, id := range []string{aliceOpen.ID, aliceDone.ID} {
				var data struct{ Task *task }
				r := srv.gql(t, bob, `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": id})
				r.mustOK(t, &data)
				if data.Task != nil {
					t.Errorf("bob sees alice's task %s: %s", id, r.Data)
				}
			}
		})
		t.Run("tasks, totalCount, search and taskStats count only the caller's", func(t *testing.T) {
			var data struct {
				All struct {
					TotalCount int
					Nodes      []task
				}
				Search    struct{ TotalCount int }
				TaskStats struct{ Total, Completed, Active int }
			}
			srv.gql(t, bob, `{
				all: tasks(first: 100) { totalCount nodes { id } }
				search: tasks(filter: {search: "plan"}) { totalCount }
				taskStats { total completed active }
			}`, nil).mustOK(t, &data)
			if data.All.TotalCount != 1 || len(data.All.Nodes) != 1 || data.All.Nodes[0].ID != bobOwn.ID {
				t.Errorf("bob's tasks = %+v, want only %s", data.All, bobOwn.ID)
			}
			if data.Search.TotalCount != 0 {
				t.Errorf("bob's search for alice's words found %d", data.Search.TotalCount)
			}
			if s := data.TaskStats; s.Total != 1 || s.Completed != 1 || s.Active != 0 {
				t.Errorf("bob's taskStats = %+v, want 1 total, 1 completed", s)
			}
		})
		t.Run("mutations on another user's task are NOT_FOUND, like a missing one", func(t *testing.T) {
			const missing = "999999"
			for _, m := range []struct{ name, query string }{
				{"updateTask", `mutation($id: ID!) { updateTask(id: $id, input: {title: "pwned", description: null, completed: true}) { id } }`},
				{"toggleTask", `mutation($id: ID!) { toggleTask(id: $id) { id } }`},
				{"deleteTask", `mutation($id: ID!) { deleteTask(id: $id) { id } }`},
			} {
				theirs := srv.gql(t, bob, m.query, map[string]any{"id": aliceOpen.ID})
				if theirs.Status != http.StatusOK {
					t.Fatalf("%s: status %d", m.name, theirs.Status)
				}
				e := theirs.mustError(t, api.CodeNotFound)
				absent := srv.gql(t, bob, m.query, map[string]any{"id": missing}).mustError(t, api.CodeNotFound)
				if e.Message != absent.Message {
					t.Errorf("%s: another user's task says %q, a missing one %q: they must be indistinguishable", m.name, e.Message, absent.Message)
				}
				if string(theirs.Data) != "null" {
					t.Errorf("%s: data = %s, want null", m.name, theirs.Data)
				}
			}
		})
		t.Run("deleteCompletedTasks deletes only the caller's", func(t *testing.T) {
			var data struct{ DeleteCompletedTasks []string }
			srv.gql(t, bob, `mutation { deleteCompletedTasks }`, nil).mustOK(t, &data)
			if len(data.DeleteCompletedTasks) != 1 || data.DeleteCompletedTasks[0] != bobOwn.ID {
				t.Errorf("bob's deleteCompletedTasks = %v, want [%s]", data.DeleteCompletedTasks, bobOwn.ID)
			}
		})
		t.Run("creating as bob does not add to alice's list", func(t *testing.T) {
			srv.createTask(t, bob, "another bob errand", false)
		})

		// After all of bob's attempts alice's tasks are exactly as created.
		var data struct {
			Open, Done *task
			Tasks      struct{ TotalCount int }
			TaskStats  struct{ Total, Completed int }
		}
		srv.gql(t, alice, `query($open: ID!, $done: ID!) {
			open: task(id: $open) { `+taskFields+` }
			done: task(id: $done) { `+taskFields+` }
			tasks { totalCount }
			taskStats { total completed }
		}`, map[string]any{"open": aliceOpen.ID, "done": aliceDone.ID}).mustOK(t, &data)
		if data.Open == nil || !equalTask(*data.Open, aliceOpen) {
			t.Errorf("alice's open task is now %+v, was %+v", data.Open, aliceOpen)
		}
		if data.Done == nil || !equalTask(*data.Done, aliceDone) {
			t.Errorf("alice's completed task is now %+v, was %+v", data.Done, aliceDone)
		}
		if data.Tasks.TotalCount != 2 || data.TaskStats.Total != 2 || data.TaskStats.Completed != 1 {
			t.Errorf("alice's counts = %+v %+v, want 2 tasks, 1 completed", data.Tasks, data.TaskStats)
		}
	})
}

// TestEveryAuthFieldRefusesAnonymousCallers runs each root field without
// a token: each answers UNAUTHENTICATED at its own path and changes
// nothing.
func TestEveryAuthFieldRefusesAnonymousCallers(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		existing := srv.createTask(t, mint(t, "alice"), "existing", true)
		for _, tt := range []struct{ field, query string }{
			{"me", `{ me { id } }`},
			{"task", `{ task(id: "` + existing.ID + `") { id } }`},
			{"tasks", `{ tasks { totalCount } }`},
			{"taskStats", `{ taskStats { total } }`},
			{"createTask", `mutation { createTask(input: {title: "anon"}) { id } }`},
			{"updateTask", `mutation { updateTask(id: "` + existing.ID + `", input: {title: "anon"}) { id } }`},
			{"toggleTask", `mutation { toggleTask(id: "` + existing.ID + `") { id } }`},
			{"deleteTask", `mutation { deleteTask(id: "` + existing.ID + `") { id } }`},
			{"deleteCompletedTasks", `mutation { deleteCompletedTasks }`},
		} {
			t.Run(tt.field, func(t *testing.T) {
				r := srv.gql(t, "", tt.query, nil)
				if r.Status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", r.Status, r.Body)
				}
				e := r.mustError(t, api.CodeUnauthenticated)
				if len(e.Path) != 1 || e.Path[0] != tt.field {
					t.Errorf("path = %v, want [%s]", e.Path, tt.field)
				}
			})
		}
		var data struct{ Task task }
		srv.gql(t, mint(t, "alice"), `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": existing.ID}).mustOK(t, &data)
		if !equalTask(data.Task, existing) || srv.taskCount(t) != 1 {
			t.Errorf("anonymous mutations changed the database: %+v, %d tasks", data.Task, srv.taskCount(t))
		}
	})
}

// TestAnotherUsersIDsInEveryInputChangeNothing is the IDOR suite: bob sends
// alice's ids and cursors in every argument that takes one, alone and
// aliased next to his own, and with every shape of update. Nothing of
// alice's leaks into his answers, and her rows, read from the database
// itself, are byte for byte as they were.
func TestAnotherUsersIDsInEveryInputChangeNothing(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		// Over a hundred mutations in a row: above the default burst.
		srv := newServer(t, d, func(c *api.Config) { c.Limits.CostBudget = 1 << 40 })
		alice, bob := mint(t, "alice"), mint(t, "bob")
		var aliceTasks []task
		for _, title := range []string{"alice a", "alice b", "alice c"} {
			aliceTasks = append(aliceTasks, srv.createTask(t, alice, title, title == "alice b"))
		}
		bobTask := srv.createTask(t, bob, "bob a", false)
		srv.createTask(t, bob, "bob b", false)
		before := rowsOf(t, srv, "alice")

		// alice's cursors, from each order.
		var cursors []string
		for _, order := range []string{"CREATED_AT", "UPDATED_AT", "TITLE"} {
			var page struct {
				Tasks struct{ Edges []struct{ Cursor string } }
			}
			srv.gql(t, alice, `query($f: TaskOrderField!) { tasks(orderBy: {field: $f, direction: ASC}) { edges { cursor } } }`,
				map[string]any{"f": order}).mustOK(t, &page)
			for _, e := range page.Tasks.Edges {
				cursors = append(cursors, order+" "+e.Cursor)
			}
		}
		t.Run("alice's cursors page through bob's tasks only", func(t *testing.T) {
			for _, c := range cursors {
				order, cursor, _ := strings.Cut(c, " ")
				for _, arg := range []string{"after", "before"} {
					var page struct{ Tasks struct{ Nodes []task } }
					srv.gql(t, bob, `query($f: TaskOrderField!, $c: String) { tasks(orderBy: {field: $f, direction: ASC}, `+arg+`: $c) { nodes { `+taskFields+` } } }`,
						map[string]any{"f": order, "c": cursor}).mustOK(t, &page)
					for _, n := range page.Tasks.Nodes {
						if strings.HasPrefix(n.Title, "alice") {
							t.Errorf("bob's page %s %s shows alice's task %+v", arg, order, n)
						}
					}
				}
			}
		})

		updates := []string{
			`{title: "pwned"}`, `{description: "pwned"}`, `{description: null}`, `{completed: true}`, `{completed: false}`,
			`{title: "pwned", description: "pwned", completed: true}`, `{}`,
		}
		t.Run("aliased next to his own, only his own change", func(t *testing.T) {
			for _, a := range aliceTasks {
				for _, in := range updates {
					for _, m := range []string{
						`updateTask(id: "%s", input: ` + in + `) { id title }`,
						`toggleTask(id: "%s") { id completed }`,
						`deleteTask(id: "%s") { id title }`,
					} {
						q := `mutation { mine: ` + strings.Replace(m, "%s", bobTask.ID, 1) + ` theirs: ` + strings.Replace(m, "%s", a.ID, 1) + ` }`
						if strings.HasPrefix(m, "deleteTask") {
							// Deleting his own would end the test early: another user's id alone.
							q = `mutation { theirs: ` + strings.Replace(m, "%s", a.ID, 1) + ` }`
						}
						r := srv.gql(t, bob, q, nil)
						if len(r.Errors) != 1 || r.Errors[0].Code() != api.CodeNotFound || len(r.Errors[0].Path) != 1 || r.Errors[0].Path[0] != "theirs" {
							t.Fatalf("%s: want one NOT_FOUND at theirs, got %s", q, r.Body)
						}
						if strings.Contains(string(r.Body), "alice") {
							t.Fatalf("%s: the answer shows alice's data: %s", q, r.Body)
						}
					}
				}
			}
		})
		t.Run("task(id:) and nested reads of alice's ids are null", func(t *testing.T) {
			for _, a := range aliceTasks {
				r := srv.gql(t, bob, `query($id: ID!) { task(id: $id) { `+taskFields+` } me { id } }`, map[string]any{"id": a.ID})
				r.mustOK(t, nil)
				if strings.Contains(string(r.Data), "alice") {
					t.Errorf("bob reads alice's task %s: %s", a.ID, r.Data)
				}
			}
		})
		srv.gql(t, bob, `mutation { deleteCompletedTasks }`, nil).mustOK(t, nil)

		if after := rowsOf(t, srv, "alice"); !reflect.DeepEqual(before, after) {
			t.Errorf("alice's rows changed:\nbefore %+v\nafter  %+v", before, after)
		}
	})
}

// rowsOf reads user's tasks from the database itself, bypassing the API.
func rowsOf(t *testing.T, srv *testServer, user string) []model.Task {
	t.Helper()
	var rows []model.Task
	if err := srv.DB.NewSelect().Model(&rows).Where("user_id = ?", user).Order("id").Scan(context.Background()); err != nil {
		t.Fatalf("read %s's rows: %v", user, err)
	}
	return rows
}
