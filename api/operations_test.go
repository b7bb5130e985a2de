package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

// These tests run every query and mutation of CONTRACT §5 over HTTP,
// through api.New, the real verifier and a fresh database of each dialect.

func TestMeAnswersFromTheTokenClaims(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		type user struct {
			ID    string
			Email *string
			Name  *string
		}
		tests := []struct {
			name  string
			token string
			want  user
		}{
			{
				name: "email and name from the claims",
				token: mint(t, "user-1", func(c *auth.MintClaims) {
					c.Email, c.Name = "ada@example.com", "Ada Lovelace"
				}),
				want: user{ID: "user-1", Email: testutil.Ptr("ada@example.com"), Name: testutil.Ptr("Ada Lovelace")},
			},
			{
				name:  "null email and name when the token has none",
				token: mint(t, "user-2"),
				want:  user{ID: "user-2"},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var data struct{ Me user }
				r := srv.gql(t, tt.token, `{ me { id email name } }`, nil)
				r.mustOK(t, &data)
				got := data.Me
				if got.ID != tt.want.ID || !equalPtr(got.Email, tt.want.Email) || !equalPtr(got.Name, tt.want.Name) {
					t.Errorf("me = %s, want %+v", r.Data, tt.want)
				}
				// null, not "": the key must be present with a JSON null.
				if tt.want.Email == nil && !strings.Contains(string(r.Data), `"email":null`) {
					t.Errorf("want email: null, got %s", r.Data)
				}
			})
		}
	})
}

func TestCreateTaskThenQueryIt(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")

		var created struct{ CreateTask task }
		srv.gql(t, alice, `mutation($in: CreateTaskInput!) { createTask(input: $in) { `+taskFields+` } }`,
			map[string]any{"in": map[string]any{"title": "  Buy milk  ", "description": "  2 litres "}}).mustOK(t, &created)
		c := created.CreateTask
		if c.ID == "" || strings.TrimLeft(c.ID, "0123456789") != "" {
			t.Errorf("id = %q, want a decimal integer", c.ID)
		}
		if c.Title != "Buy milk" || c.Description == nil || *c.Description != "2 litres" || c.Completed {
			t.Errorf("created %+v: want trimmed title and description, not completed", c)
		}
		for name, ts := range map[string]string{"createdAt": c.CreatedAt, "updatedAt": c.UpdatedAt} {
			if !timeFormat.MatchString(ts) {
				t.Errorf("%s = %q, want RFC 3339 UTC with six fractional digits ending in Z", name, ts)
			}
		}

		// What the mutation returned equals, character for character, what
		// later queries return, by task(id:) and in a list.
		var got struct {
			Task  task
			Tasks struct{ Nodes []task }
		}
		srv.gql(t, alice, `query($id: ID!) { task(id: $id) { `+taskFields+` } tasks { nodes { `+taskFields+` } } }`,
			map[string]any{"id": c.ID}).mustOK(t, &got)
		if !equalTask(got.Task, c) {
			t.Errorf("task(id:) = %+v, want what createTask returned: %+v", got.Task, c)
		}
		if len(got.Tasks.Nodes) != 1 || !equalTask(got.Tasks.Nodes[0], c) {
			t.Errorf("tasks.nodes = %+v, want [%+v]", got.Tasks.Nodes, c)
		}

		// The same over GET, as urql sends it.
		var viaGET struct{ Task task }
		srv.get(t, alice, `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": c.ID}).mustOK(t, &viaGET)
		if !equalTask(viaGET.Task, c) {
			t.Errorf("task(id:) over GET = %+v, want %+v", viaGET.Task, c)
		}
	})
}

func TestCreateTaskDefaults(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")
		var data struct{ A, B task }
		srv.gql(t, alice, `mutation {
			a: createTask(input: {title: "plain"}) { `+taskFields+` }
			b: createTask(input: {title: "done", description: "   ", completed: true}) { `+taskFields+` }
		}`, nil).mustOK(t, &data)
		if data.A.Completed || data.A.Description != nil {
			t.Errorf("a = %+v, want not completed and no description", data.A)
		}
		if !data.B.Completed {
			t.Errorf("b = %+v, want completed", data.B)
		}
		if data.B.Description != nil {
			t.Errorf("b.description = %q, want null: a blank description is stored as null", *data.B.Description)
		}
	})
}

func TestUpdateTaskTellsAbsentFromNullDescription(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")
		const update = `mutation($id: ID!, $in: UpdateTaskInput!) { updateTask(id: $id, input: $in) { ` + taskFields + ` } }`
		var created struct{ CreateTask task }
		srv.gql(t, alice, `mutation { createTask(input: {title: "t", description: "keep"}) { `+taskFields+` } }`, nil).mustOK(t, &created)
		id := created.CreateTask.ID

		steps := []struct {
			name      string
			query     string
			vars      map[string]any
			wantTitle string
			wantDesc  *string
			wantDone  bool
		}{
			{"absent description is unchanged", update,
				map[string]any{"id": id, "in": map[string]any{"title": " renamed "}}, "renamed", testutil.Ptr("keep"), false},
			{"completed alone changes only completed", update,
				map[string]any{"id": id, "in": map[string]any{"completed": true}}, "renamed", testutil.Ptr("keep"), true},
			{"a new description replaces it", update,
				map[string]any{"id": id, "in": map[string]any{"description": "new"}}, "renamed", testutil.Ptr("new"), true},
			{"an unset variable inside the input is absent, not null",
				`mutation($id: ID!, $d: String) { updateTask(id: $id, input: {description: $d}) { ` + taskFields + ` } }`,
				map[string]any{"id": id}, "renamed", testutil.Ptr("new"), true},
			{"explicit null clears it", update,
				map[string]any{"id": id, "in": map[string]any{"description": nil}}, "renamed", nil, true},
			{"an empty input changes nothing", update,
				map[string]any{"id": id, "in": map[string]any{}}, "renamed", nil, true},
		}
		prev := created.CreateTask
		for _, s := range steps {
			var data struct{ UpdateTask task }
			srv.gql(t, alice, s.query, s.vars).mustOK(t, &data)
			u := data.UpdateTask
			if u.ID != id || u.Title != s.wantTitle || !equalPtr(u.Description, s.wantDesc) || u.Completed != s.wantDone {
				t.Errorf("%s: got %+v, want title %q description %v completed %v", s.name, u, s.wantTitle, fmtPtr(s.wantDesc), s.wantDone)
			}
			if u.CreatedAt != prev.CreatedAt {
				t.Errorf("%s: createdAt changed from %s to %s", s.name, prev.CreatedAt, u.CreatedAt)
			}
			if !timeFormat.MatchString(u.UpdatedAt) || u.UpdatedAt < prev.UpdatedAt {
				t.Errorf("%s: updatedAt %s, want a Time not before %s", s.name, u.UpdatedAt, prev.UpdatedAt)
			}
			var q struct{ Task task }
			srv.gql(t, alice, `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": id}).mustOK(t, &q)
			if !equalTask(q.Task, u) {
				t.Errorf("%s: later query %+v differs from the mutation's answer %+v", s.name, q.Task, u)
			}
			prev = u
		}
	})
}

func TestToggleAndDeleteTask(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")
		c := srv.createTask(t, alice, "flip me", false)

		for i, want := range []bool{true, false} {
			var data struct{ ToggleTask task }
			srv.gql(t, alice, `mutation($id: ID!) { toggleTask(id: $id) { `+taskFields+` } }`, map[string]any{"id": c.ID}).mustOK(t, &data)
			if data.ToggleTask.Completed != want || data.ToggleTask.Title != c.Title {
				t.Errorf("toggle %d: %+v, want completed %v", i+1, data.ToggleTask, want)
			}
		}

		var before struct{ Task task }
		srv.gql(t, alice, `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": c.ID}).mustOK(t, &before)
		var deleted struct{ DeleteTask task }
		srv.gql(t, alice, `mutation($id: ID!) { deleteTask(id: $id) { `+taskFields+` } }`, map[string]any{"id": c.ID}).mustOK(t, &deleted)
		if !equalTask(deleted.DeleteTask, before.Task) {
			t.Errorf("deleteTask = %+v, want the task as it was: %+v", deleted.DeleteTask, before.Task)
		}
		var after struct{ Task *task }
		r := srv.gql(t, alice, `query($id: ID!) { task(id: $id) { id } }`, map[string]any{"id": c.ID})
		r.mustOK(t, &after)
		if after.Task != nil {
			t.Errorf("task(id:) after delete = %+v, want null", after.Task)
		}
		// Deleting it again is NOT_FOUND.
		e := srv.gql(t, alice, `mutation($id: ID!) { deleteTask(id: $id) { id } }`, map[string]any{"id": c.ID}).mustError(t, api.CodeNotFound)
		if len(e.Path) != 1 || e.Path[0] != "deleteTask" {
			t.Errorf("error path = %v, want [deleteTask]", e.Path)
		}
	})
}

func TestDeleteCompletedTasksReturnsTheirIDs(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")
		done1 := srv.createTask(t, alice, "done 1", true)
		active := srv.createTask(t, alice, "active", false)
		done2 := srv.createTask(t, alice, "done 2", true)

		var data struct{ DeleteCompletedTasks []string }
		srv.gql(t, alice, `mutation { deleteCompletedTasks }`, nil).mustOK(t, &data)
		if got, want := strings.Join(data.DeleteCompletedTasks, ","), done1.ID+","+done2.ID; got != want {
			t.Errorf("deleteCompletedTasks = [%s], want [%s]", got, want)
		}
		var left struct{ Tasks struct{ Nodes []task } }
		srv.gql(t, alice, `{ tasks { nodes { id } } }`, nil).mustOK(t, &left)
		if len(left.Tasks.Nodes) != 1 || left.Tasks.Nodes[0].ID != active.ID {
			t.Errorf("after deleteCompletedTasks: %+v, want only %s", left.Tasks.Nodes, active.ID)
		}
		r := srv.gql(t, alice, `mutation { deleteCompletedTasks }`, nil)
		r.mustOK(t, nil)
		if string(r.Data) != `{"deleteCompletedTasks":[]}` {
			t.Errorf("second deleteCompletedTasks = %s, want an empty list", r.Data)
		}
	})
}

func TestTasksConnectionAndStats(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")
		var ids []string
		for i, title := range []string{"alpha", "Bravo 50%", "charlie", "delta_x", "echo"} {
			ids = append(ids, srv.createTask(t, alice, title, i%2 == 1).ID)
		}
		// Default order is CREATED_AT DESC, ties by id DESC: newest first.
		newestFirst := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}

		type page struct {
			Tasks struct {
				Edges []struct {
					Cursor string
					Node   task
				}
				Nodes    []task
				PageInfo struct {
					HasNextPage, HasPreviousPage bool
					StartCursor, EndCursor       *string
				}
				TotalCount int
			}
		}
		const list = `query($first: Int, $after: String, $last: Int, $before: String, $filter: TaskFilter, $order: TaskOrder) {
			tasks(first: $first, after: $after, last: $last, before: $before, filter: $filter, orderBy: $order) {
				edges { cursor node { ` + taskFields + ` } }
				nodes { ` + taskFields + ` }
				pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
				totalCount
			}
		}`
		fetch := func(t *testing.T, vars map[string]any) page {
			t.Helper()
			var p page
			srv.gql(t, alice, list, vars).mustOK(t, &p)
			if len(p.Tasks.Edges) != len(p.Tasks.Nodes) {
				t.Fatalf("%d edges but %d nodes", len(p.Tasks.Edges), len(p.Tasks.Nodes))
			}
			for i, e := range p.Tasks.Edges {
				if e.Cursor == "" || !equalTask(e.Node, p.Tasks.Nodes[i]) {
					t.Errorf("edge %d = %+v, node %+v: want a cursor and the same task", i, e, p.Tasks.Nodes[i])
				}
			}
			if n := len(p.Tasks.Edges); n > 0 {
				if p.Tasks.PageInfo.StartCursor == nil || *p.Tasks.PageInfo.StartCursor != p.Tasks.Edges[0].Cursor ||
					p.Tasks.PageInfo.EndCursor == nil || *p.Tasks.PageInfo.EndCursor != p.Tasks.Edges[n-1].Cursor {
					t.Errorf("startCursor/endCursor do not match the first and last edges")
				}
			} else if p.Tasks.PageInfo.StartCursor != nil || p.Tasks.PageInfo.EndCursor != nil {
				t.Errorf("an empty page has cursors %v %v, want null", p.Tasks.PageInfo.StartCursor, p.Tasks.PageInfo.EndCursor)
			}
			return p
		}
		idsOf := func(p page) string {
			var s []string
			for _, n := range p.Tasks.Nodes {
				s = append(s, n.ID)
			}
			return strings.Join(s, ",")
		}

		t.Run("pages forward with first/after", func(t *testing.T) {
			p1 := fetch(t, map[string]any{"first": 2})
			if got, want := idsOf(p1), strings.Join(newestFirst[:2], ","); got != want {
				t.Errorf("page 1 = %s, want %s", got, want)
			}
			if !p1.Tasks.PageInfo.HasNextPage || p1.Tasks.PageInfo.HasPreviousPage || p1.Tasks.TotalCount != 5 {
				t.Errorf("page 1 pageInfo %+v totalCount %d, want next, no previous, 5", p1.Tasks.PageInfo, p1.Tasks.TotalCount)
			}
			p2 := fetch(t, map[string]any{"first": 2, "after": *p1.Tasks.PageInfo.EndCursor})
			p3 := fetch(t, map[string]any{"first": 2, "after": *p2.Tasks.PageInfo.EndCursor})
			if got, want := idsOf(p2)+";"+idsOf(p3), strings.Join(newestFirst[2:4], ",")+";"+newestFirst[4]; got != want {
				t.Errorf("pages 2;3 = %s, want %s", got, want)
			}
			if p3.Tasks.PageInfo.HasNextPage || !p3.Tasks.PageInfo.HasPreviousPage {
				t.Errorf("last page pageInfo %+v, want no next page and a previous one", p3.Tasks.PageInfo)
			}
		})
		t.Run("pages backward with last/before keeping the order inside the page", func(t *testing.T) {
			p := fetch(t, map[string]any{"last": 2})
			if got, want := idsOf(p), strings.Join(newestFirst[3:], ","); got != want {
				t.Errorf("last 2 = %s, want %s", got, want)
			}
			if !p.Tasks.PageInfo.HasPreviousPage {
				t.Errorf("last 2: want hasPreviousPage")
			}
			prev := fetch(t, map[string]any{"last": 2, "before": *p.Tasks.PageInfo.StartCursor})
			if got, want := idsOf(prev), strings.Join(newestFirst[1:3], ","); got != want {
				t.Errorf("last 2 before = %s, want %s", got, want)
			}
		})
		t.Run("first 0 returns no edges but the count", func(t *testing.T) {
			p := fetch(t, map[string]any{"first": 0})
			if len(p.Tasks.Nodes) != 0 || p.Tasks.TotalCount != 5 {
				t.Errorf("first: 0 = %s with totalCount %d, want nothing and 5", idsOf(p), p.Tasks.TotalCount)
			}
		})
		t.Run("filters by completion and search, counting the matches", func(t *testing.T) {
			p := fetch(t, map[string]any{"filter": map[string]any{"completed": true}})
			if got, want := idsOf(p), ids[3]+","+ids[1]; got != want || p.Tasks.TotalCount != 2 {
				t.Errorf("completed = %s (totalCount %d), want %s (2)", got, p.Tasks.TotalCount, want)
			}
			p = fetch(t, map[string]any{"filter": map[string]any{"search": "BRAVO"}})
			if got := idsOf(p); got != ids[1] || p.Tasks.TotalCount != 1 {
				t.Errorf("search BRAVO = %s (totalCount %d), want %s (1)", got, p.Tasks.TotalCount, ids[1])
			}
			// % and _ match themselves.
			for search, want := range map[string]string{"%": ids[1], "_": ids[3], "a_x": ids[3]} {
				p = fetch(t, map[string]any{"filter": map[string]any{"search": search}})
				if got := idsOf(p); got != want {
					t.Errorf("search %q = %s, want %s", search, got, want)
				}
			}
		})
		t.Run("orders by title ascending across pages", func(t *testing.T) {
			order := map[string]any{"field": "TITLE", "direction": "ASC"}
			p1 := fetch(t, map[string]any{"order": order, "first": 3})
			p2 := fetch(t, map[string]any{"order": order, "first": 3, "after": *p1.Tasks.PageInfo.EndCursor})
			var titles []string
			for _, n := range append(p1.Tasks.Nodes, p2.Tasks.Nodes...) {
				titles = append(titles, n.Title)
			}
			// Where "Bravo 50%" sorts depends on the collation (byte order on
			// SQLite); the lower-case titles are in order everywhere.
			var lower []string
			for _, title := range titles {
				if title != "Bravo 50%" {
					lower = append(lower, title)
				}
			}
			if len(titles) != 5 || strings.Join(lower, ",") != "alpha,charlie,delta_x,echo" {
				t.Errorf("titles by TITLE ASC over two pages = %v", titles)
			}
			if p2.Tasks.PageInfo.HasNextPage || !p1.Tasks.PageInfo.HasNextPage {
				t.Errorf("hasNextPage: page 1 %v, page 2 %v; want true, false", p1.Tasks.PageInfo.HasNextPage, p2.Tasks.PageInfo.HasNextPage)
			}
		})
		t.Run("taskStats counts all tasks", func(t *testing.T) {
			var data struct {
				TaskStats struct{ Total, Completed, Active int }
			}
			srv.gql(t, alice, `{ taskStats { total completed active } }`, nil).mustOK(t, &data)
			if s := data.TaskStats; s.Total != 5 || s.Completed != 2 || s.Active != 3 {
				t.Errorf("taskStats = %+v, want 5 total, 2 completed, 3 active", s)
			}
		})
	})
}

func TestTaskStatsOfANewUserAreZero(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		var data struct {
			TaskStats struct{ Total, Completed, Active int }
			Tasks     struct {
				TotalCount int
				Nodes      []task
			}
		}
		r := srv.gql(t, mint(t, "newcomer"), `{ taskStats { total completed active } tasks { totalCount nodes { id } } }`, nil)
		r.mustOK(t, &data)
		if data.TaskStats.Total != 0 || data.TaskStats.Completed != 0 || data.TaskStats.Active != 0 || data.Tasks.TotalCount != 0 {
			t.Errorf("new user: %s, want zeros", r.Data)
		}
		if !strings.Contains(string(r.Data), `"nodes":[]`) {
			t.Errorf("nodes of an empty list = %s, want []", r.Data)
		}
	})
}

// TestBadUserInputNamesTheField checks BAD_USER_INPUT and extensions.field
// for each kind of invalid input (CONTRACT §6, §7).
func TestBadUserInputNamesTheField(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")
		existing := srv.createTask(t, alice, "existing", false)
		tests := []struct {
			name  string
			query string
			vars  map[string]any
			field string
		}{
			{"title over 200 characters", `mutation($t: String!) { createTask(input: {title: $t}) { id } }`,
				map[string]any{"t": strings.Repeat("é", 201)}, "title"},
			{"blank title", `mutation { createTask(input: {title: "   "}) { id } }`, nil, "title"},
			{"title with a NUL", `mutation($t: String!) { createTask(input: {title: $t}) { id } }`,
				map[string]any{"t": "a\x00b"}, "title"},
			{"description over 1000 characters", `mutation($d: String) { createTask(input: {title: "t", description: $d}) { id } }`,
				map[string]any{"d": strings.Repeat("d", 1001)}, "description"},
			{"update with title null", `mutation($id: ID!) { updateTask(id: $id, input: {title: null}) { id } }`,
				map[string]any{"id": existing.ID}, "title"},
			{"update with a too long title", `mutation($id: ID!, $t: String) { updateTask(id: $id, input: {title: $t}) { id } }`,
				map[string]any{"id": existing.ID, "t": strings.Repeat("t", 201)}, "title"},
			{"task id abc", `{ task(id: "abc") { id } }`, nil, "id"},
			{"task id 1.5", `{ task(id: "1.5") { id } }`, nil, "id"},
			{"task id empty", `{ task(id: "") { id } }`, nil, "id"},
			{"task id 0x10", `{ task(id: "0x10") { id } }`, nil, "id"},
			{"task id 1e3", `{ task(id: "1e3") { id } }`, nil, "id"},
			{"update id abc", `mutation { updateTask(id: "abc", input: {title: "x"}) { id } }`, nil, "id"},
			{"toggle id -1", `mutation { toggleTask(id: "-1") { id } }`, nil, "id"},
			{"delete id 007", `mutation { deleteTask(id: "007") { id } }`, nil, "id"},
			{"first 101", `{ tasks(first: 101) { totalCount } }`, nil, "first"},
			{"first -1", `{ tasks(first: -1) { totalCount } }`, nil, "first"},
			{"last 101", `{ tasks(last: 101) { totalCount } }`, nil, "last"},
			{"bad after cursor", `{ tasks(after: "not a cursor") { totalCount } }`, nil, "after"},
			{"bad before cursor", `{ tasks(before: "eyJ4IjoxfQ") { totalCount } }`, nil, "before"},
			{"search over 200 characters", `query($s: String) { tasks(filter: {search: $s}) { totalCount } }`,
				map[string]any{"s": strings.Repeat("s", 201)}, "filter.search"},
			{"search of 201 code points of two bytes", `query($s: String) { tasks(filter: {search: $s}) { totalCount } }`,
				map[string]any{"s": strings.Repeat("é", 201)}, "filter.search"},
			{"search with a NUL", `{ tasks(filter: {search: "a\u0000b"}) { totalCount } }`, nil, "filter.search"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := srv.gql(t, alice, tt.query, tt.vars)
				if r.Status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", r.Status, r.Body)
				}
				e := r.mustError(t, api.CodeBadUserInput)
				if e.Extensions["field"] != tt.field {
					t.Errorf("extensions.field = %v, want %q: %s", e.Extensions["field"], tt.field, r.Body)
				}
				if len(e.Path) == 0 {
					t.Errorf("error has no path: %s", r.Body)
				}
			})
		}
		if n := srv.taskCount(t); n != 1 {
			t.Errorf("invalid input changed the database: %d tasks, want 1", n)
		}
	})
}

// TestCursorOfAnotherOrderIsBadUserInput: a cursor made for one orderBy
// cannot be used with another.
func TestCursorOfAnotherOrderIsBadUserInput(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	srv.createTask(t, alice, "a", false)
	var p struct {
		Tasks struct{ PageInfo struct{ EndCursor string } }
	}
	srv.gql(t, alice, `{ tasks(first: 1) { pageInfo { endCursor } } }`, nil).mustOK(t, &p)
	e := srv.gql(t, alice, `query($c: String) { tasks(after: $c, orderBy: {field: TITLE, direction: ASC}) { totalCount } }`,
		map[string]any{"c": p.Tasks.PageInfo.EndCursor}).mustError(t, api.CodeBadUserInput)
	if e.Extensions["field"] != "after" {
		t.Errorf("field = %v, want after", e.Extensions["field"])
	}
}

// TestOrdinaryPageIsNeverRefused pins CONTRACT §7: whatever depth or cost
// limits the server applies, a full page with everything a task list
// screen shows in one document is served.
func TestOrdinaryPageIsNeverRefused(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	srv.createTask(t, alice, "one", false)
	var data struct {
		Me    struct{ ID string }
		Tasks struct {
			Edges      []struct{ Node task }
			TotalCount int
		}
		TaskStats struct{ Total int }
	}
	srv.gql(t, alice, `{
		me { id email name }
		tasks(first: 100) {
			edges { cursor node { `+taskFields+` } }
			nodes { `+taskFields+` }
			pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
			totalCount
		}
		taskStats { total completed active }
	}`, nil).mustOK(t, &data)
	if data.Me.ID != "alice" || len(data.Tasks.Edges) != 1 || data.Tasks.TotalCount != 1 || data.TaskStats.Total != 1 {
		t.Errorf("page = %+v", data)
	}
}
