package api_test

import (
	"net/http"
	"testing"

	"github.com/taskql/server/api"
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
