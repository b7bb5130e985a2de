package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskql/server/api"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// fastPathTitles are stored titles that need every kind of care in JSON:
// quotes and backslashes, control characters (NUL aside, which PostgreSQL
// refuses, as does the API), what HTML escaping would touch, the line
// separators JavaScript minds, and characters of several UTF-8 lengths.
// Invalid UTF-8 cannot be stored (the API refuses it and PostgreSQL would),
// so it is pinned by the internal test of appendString instead.
var fastPathTitles = []string{
	`Say "hi" to the \ backslash \\ and \"`,
	"tab\there, newline\nthere, CR\r, \x01 \x08 \x0c \x1b \x1f and DEL \x7f",
	`<script>alert('&amp; & <b>')</script>`,
	"line\u2028separator and paragraph\u2029separator",
	"emoji 😀👍🏽, é ñ 漢字, \u00a0no-break\u00a0 and \ufeff BOM",
	strings.Repeat("long ", 40),
	"/slashes/ and \u0085 NEL",
}

// seedFastPathTasks gives alice 25 tasks (the titles above first, then
// plain ones; descriptions alternately null and tricky, completion
// alternating) and bob 3, with times of their own, identically in every
// database it is given: the ids are drawn in the same order.
func seedFastPathTasks(t *testing.T, servers ...*testServer) {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	var tasks []*model.Task
	for i := range 28 {
		user, title := "alice", fmt.Sprintf("Task %d", i)
		if i < len(fastPathTitles) {
			title = fastPathTitles[i]
		}
		if i >= 25 {
			user = "bob"
		}
		var desc *string
		if i%2 == 1 {
			desc = testutil.Ptr(fastPathTitles[(i/2)%len(fastPathTitles)] + " (description)")
		}
		created := start.Add(time.Duration(i) * 1000001 * time.Microsecond)
		tasks = append(tasks, &model.Task{UserID: user, Title: title, Description: desc, Completed: i%3 == 0,
			CreatedAt: created, UpdatedAt: created.Add(time.Duration(i) * time.Minute)})
	}
	for _, srv := range servers {
		if _, err := srv.DB.NewInsert().Model(&tasks).ExcludeColumn("id").Exec(context.Background()); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
}

// fastPathCase is one document of the differential corpus.
type fastPathCase struct {
	name  string
	query string
	vars  map[string]any
	// token is the user the request is sent as: alice when empty, none
	// when "-".
	token string
	// get sends the document in a GET; accept is the Accept header.
	get    bool
	accept string
	// stamped marks an answer holding times the database stamped during
	// the request, which differ between the two databases: every time is
	// then compared by its format only.
	stamped bool
	// fast says whether the fast path writes a field of the answer
	// (rather than leaving all of it to gqlgen).
	fast bool
}

// stampedTime is a time as the Time scalar writes it.
var stampedTime = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"`)

// TestFastPathAnswersAsGqlgenDoes is the differential test of fastpath.go:
// each document of the corpus goes to a server with the fast path and to
// one without it, over databases holding the same tasks, and the answers
// must be the same bytes (status, media type, body). The corpus runs in
// order, mutations included, so both databases change alike.
func TestFastPathAnswersAsGqlgenDoes(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		var written atomic.Int64
		// A budget that is always full again by the next request, so that
		// extensions.cost.budget.remaining is the same on both servers.
		limits := func(c *api.Config) { c.Limits.CostRefill = 1e9 }
		fast := newServer(t, d, limits, func(c *api.Config) {
			*c = api.WithFastPathHook(*c, func() { written.Add(1) })
		})
		slow := newServer(t, d, limits, func(c *api.Config) { *c = api.WithoutFastPath(*c) })
		seedFastPathTasks(t, fast, slow)
		alice, bob := mint(t, "alice"), mint(t, "bob")

		// A cursor into alice's list, to read a second page with.
		var page struct {
			Tasks struct{ PageInfo struct{ EndCursor string } }
		}
		slow.gql(t, alice, `{ tasks(first: 5) { pageInfo { endCursor } } }`, nil).mustOK(t, &page)
		after := page.Tasks.PageInfo.EndCursor

		const all = `id title description completed createdAt updatedAt`
		corpus := []fastPathCase{
			{name: "the benchmark's page", query: `query Tasks { tasks(first: 20) { nodes { ` + all + ` } } }`, fast: true},
			{name: "the default page with __typename first", query: `{ tasks { nodes { __typename ` + all + ` } } }`, fast: true},
			{name: "a full page", query: `{ tasks(first: 100) { nodes { ` + all + ` } totalCount } }`, fast: true},
			{name: "aliases, and a field under its name and an alias",
				query: `{ list: tasks(first: 6) { items: nodes { key: id name: title d: description id done: completed } } }`, fast: true},
			{name: "__typename at every level",
				query: `{ __typename tasks(first: 3) { __typename nodes { __typename id } edges { __typename cursor node { __typename id } } pageInfo { __typename hasNextPage } } }`, fast: true},
			{name: "an aliased __typename", query: `{ tasks(first: 2) { nodes { kind: __typename t: __typename id } } }`, fast: true},
			{name: "a named fragment beside a field",
				query: `fragment T on Task { id title } { tasks(first: 4) { nodes { ...T completed } } }`, fast: true},
			{name: "nested fragments on the connection, its edges and its tasks",
				query: `fragment Page on TaskConnection { nodes { ...T } edges { ...E } } fragment E on TaskEdge { cursor node { ...T } } fragment T on Task { id ... on Task { title } ...D } fragment D on Task { description }
					{ tasks(first: 4) { ...Page } }`, fast: true},
			{name: "inline fragments with and without a type condition",
				query: `{ ... on Query { tasks(first: 3) { ... on TaskConnection { nodes { ... on Task { id } ... { title } } } } } }`, fast: true},
			{name: "a field selected again in a fragment merges in its first place",
				query: `{ tasks(first: 3) { nodes { id title ... on Task { id description } updatedAt ... { title createdAt } } } }`, fast: true},
			{name: "a list field selected twice merges its selections",
				query: `{ tasks(first: 3) { nodes { id } edges { cursor } nodes { title } edges { node { id } } } }`, fast: true},
			{name: "a list under two aliases", query: `{ tasks(first: 3) { a: nodes { id } b: nodes { title completed } } }`, fast: true},
			{name: "@skip and @include with literals",
				query: `{ tasks(first: 3) { nodes { id @skip(if: true) title @include(if: false) description @include(if: true) completed @skip(if: false) createdAt @skip(if: true) @include(if: true) } } }`, fast: true},
			{name: "@skip and @include with variables, false",
				query: `query($s: Boolean!, $i: Boolean!) { tasks(first: 3) { nodes { id @skip(if: $s) title @include(if: $i) ... @include(if: $i) { createdAt } ...F @skip(if: $s) } } } fragment F on Task { updatedAt }`,
				vars:  map[string]any{"s": false, "i": false}, fast: true},
			{name: "@skip and @include with variables, true",
				query: `query($s: Boolean!, $i: Boolean!) { tasks(first: 3) { nodes { id @skip(if: $s) title @include(if: $i) ... @include(if: $i) { createdAt } ...F @skip(if: $s) } } } fragment F on Task { updatedAt }`,
				vars:  map[string]any{"s": true, "i": true}, fast: true},
			{name: "every field of a task skipped leaves an empty object",
				query: `query($s: Boolean = true) { tasks(first: 2) { nodes { id @skip(if: $s) title @skip(if: $s) } } }`, fast: true},
			{name: "the list itself skipped", query: `{ tasks { nodes @include(if: false) { id } totalCount } }`},
			{name: "edges with cursors and the page info",
				query: `{ tasks(first: 5) { edges { cursor node { id title } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount } }`, fast: true},
			{name: "edges without cursors", query: `{ tasks(first: 5) { edges { node { id completed } } } }`, fast: true},
			{name: "edges of only __typename", query: `{ tasks(first: 2) { edges { __typename } } }`, fast: true},
			{name: "edges with two nodes and an aliased cursor",
				query: `{ tasks(first: 3) { edges { a: node { id } c: cursor b: node { title } } } }`, fast: true},
			{name: "an empty page",
				query: `{ tasks(first: 0) { nodes { id } edges { cursor node { id } } pageInfo { startCursor endCursor hasNextPage } } }`, fast: true},
			{name: "an empty page of a filter", query: `{ tasks(filter: {search: "no task has this"}) { nodes { id } edges { node { id } } } }`, fast: true},
			{name: "the second page", query: `query($after: String) { tasks(first: 5, after: $after) { edges { cursor node { id title } } pageInfo { hasPreviousPage endCursor } } }`,
				vars: map[string]any{"after": after}, fast: true},
			{name: "the last page backward, filtered, by title",
				query: `{ tasks(last: 4, orderBy: {field: TITLE, direction: ASC}, filter: {completed: false}) { edges { cursor node { title completed } } pageInfo { hasPreviousPage startCursor } } }`, fast: true},
			{name: "a search for a quote", query: `{ tasks(filter: {search: "\""}) { nodes { id title description } } }`, fast: true},
			{name: "another user's page", token: "bob", query: `{ tasks { nodes { ` + all + ` } } }`, fast: true},
			{name: "a task found", query: `query($id: ID!) { task(id: $id) { __typename ` + all + ` } }`, vars: map[string]any{"id": "2"}, fast: true},
			{name: "a task with a null description", query: `{ task(id: "1") { id description } }`, fast: true},
			{name: "a task with a description", query: `{ task(id: "2") { id description } }`, fast: true},
			{name: "another user's task is not found", query: `{ task(id: "26") { id title } }`},
			{name: "a task that does not exist", query: `{ task(id: "999999") { id } }`},
			{name: "a malformed id is BAD_USER_INPUT", query: `{ task(id: "x1") { id } }`},
			{name: "a task beside an error", query: `{ a: task(id: "3") { id title } b: task(id: "0") { id } }`, fast: true},
			{name: "several aliased roots",
				query: `{ a: task(id: "1") { id } b: task(id: "4") { title } c: tasks(first: 2) { nodes { id } } me { id } taskStats { total completed active } }`, fast: true},
			{name: "a GET", get: true, query: `{ tasks(first: 3) { nodes { id title } } }`, fast: true},
			{name: "a named operation of several",
				query: `query A { task(id: "1") { id } } query B { tasks(first: 2) { nodes { title } } }`, vars: nil, fast: true},
			{name: "no token is UNAUTHENTICATED", token: "-", query: `{ tasks { nodes { id } } }`},
			{name: "a page too large is BAD_USER_INPUT", query: `{ tasks(first: 101) { nodes { id } } }`},
			{name: "an unknown field fails validation", query: `{ tasks { nodes { id tags } } }`},
			{name: "@defer is refused without multipart", query: `{ tasks(first: 2) { nodes { id ... @defer { title } } } }`},
			{name: "@defer is streamed to multipart, by gqlgen", accept: "multipart/mixed;deferSpec=20220824, application/json",
				query: `{ tasks(first: 1) { nodes { id ... @defer { title } } } }`},
			{name: "@defer elsewhere leaves the list to gqlgen too", accept: "multipart/mixed;deferSpec=20220824, application/json",
				query: `{ me { id ... @defer { email } } tasks(first: 2) { nodes { id title } } }`},

			{name: "createTask with strings to escape, without the stamped times",
				query: `mutation($in: CreateTaskInput!) { createTask(input: $in) { __typename id title description completed } }`,
				vars: map[string]any{"in": map[string]any{"title": "  \"quoted\" \\ back \u2028 😀 <&>\ttab\x01  ",
					"description": "tab\tnew\nline \"q\" </script>"}}, fast: true},
			{name: "createTask with every field", query: `mutation { createTask(input: {title: "plain", completed: true}) { ` + all + ` } }`,
				stamped: true, fast: true},
			{name: "updateTask clears the description", query: `mutation { updateTask(id: "2", input: {description: null}) { id title description createdAt } }`, fast: true},
			{name: "updateTask with every field", query: `mutation { updateTask(id: "4", input: {title: "new \"title\"", description: "d\\e"}) { ` + all + ` } }`,
				stamped: true, fast: true},
			{name: "toggleTask", query: `mutation { toggleTask(id: "5") { id completed } }`, fast: true},
			{name: "toggleTask with every field", query: `mutation { toggleTask(id: "5") { ...T } } fragment T on Task { ` + all + ` }`, stamped: true, fast: true},
			{name: "two toggles run in order", query: `mutation { a: toggleTask(id: "6") { id completed } b: toggleTask(id: "6") { id completed } }`, fast: true},
			{name: "deleteTask returns the task as it was", query: `mutation { deleteTask(id: "7") { __typename ` + all + ` } }`, fast: true},
			{name: "deleteTask of a deleted task is NOT_FOUND", query: `mutation { deleteTask(id: "7") { id } }`},
			{name: "updateTask of another user's task is NOT_FOUND", query: `mutation { updateTask(id: "26", input: {title: "mine"}) { id } }`},
			{name: "updateTask to an empty title is BAD_USER_INPUT", query: `mutation { updateTask(id: "3", input: {title: "  "}) { id } }`},
			{name: "createTask of a title too long is BAD_USER_INPUT",
				query: `mutation($t: String!) { createTask(input: {title: $t}) { id } }`, vars: map[string]any{"t": strings.Repeat("x", 201)}},
			{name: "a mutation that fails after one that succeeds",
				query: `mutation { a: toggleTask(id: "8") { id completed } b: toggleTask(id: "999999") { id } }`, fast: true},
			// (Not the cursors: they hold the stamped times, base64-encoded.)
			{name: "the list after the mutations", query: `{ tasks(first: 100) { nodes { ` + all + ` } } }`, stamped: true, fast: true},
			{name: "bob's list is untouched", token: "bob", query: `{ tasks { edges { cursor node { ` + all + ` } } } }`, fast: true},
		}
		tokens := map[string]string{"": alice, "bob": bob, "-": ""}
		for _, tc := range corpus {
			t.Run(tc.name, func(t *testing.T) {
				before := written.Load()
				want := fastPathAnswer(t, slow, tokens[tc.token], tc)
				got := fastPathAnswer(t, fast, tokens[tc.token], tc)
				if tc.fast != (written.Load() > before) {
					t.Errorf("fast path wrote %d answers, want some: %v", written.Load()-before, tc.fast)
				}
				if tc.stamped {
					if n, m := len(stampedTime.FindAll(want.Body, -1)), len(stampedTime.FindAll(got.Body, -1)); n == 0 || n != m {
						t.Errorf("%d times without the fast path, %d with it", n, m)
					}
					want.Body = stampedTime.ReplaceAll(want.Body, []byte(`"<time>"`))
					got.Body = stampedTime.ReplaceAll(got.Body, []byte(`"<time>"`))
				}
				if got.Status != want.Status || got.Header.Get("Content-Type") != want.Header.Get("Content-Type") || !bytes.Equal(got.Body, want.Body) {
					t.Fatalf("with the fast path: %d %s\n%s\nwithout: %d %s\n%s", got.Status, got.Header.Get("Content-Type"), got.Body,
						want.Status, want.Header.Get("Content-Type"), want.Body)
				}
				if !json.Valid(got.Body) && tc.accept == "" {
					t.Errorf("answer is not JSON: %s", got.Body)
				}
			})
		}
	})
}

// fastPathAnswer sends tc to srv as the user of token.
func fastPathAnswer(t *testing.T, srv *testServer, token string, tc fastPathCase) *response {
	t.Helper()
	if tc.get {
		return srv.get(t, token, tc.query, tc.vars)
	}
	body, err := json.Marshal(map[string]any{"query": tc.query, "variables": tc.vars, "operationName": operationName(tc.query)})
	if err != nil {
		t.Fatalf("encode request: %v", err)
	}
	return srv.do(t, request{Token: token, Accept: tc.accept, Body: bytes.NewReader(body)})
}

// operationName picks B in the corpus's document of several operations.
func operationName(query string) string {
	if strings.Contains(query, "query B") {
		return "B"
	}
	return ""
}

// TestFastPathAnswersCountTowardTheSizeLimit pins that what the fast path
// writes counts in the answer's size, though its fields no longer pass
// the size check one by one: an answer of such fields over the limit is
// refused as one error, by both paths alike, and one under it is served.
func TestFastPathAnswersCountTowardTheSizeLimit(t *testing.T) {
	const limit = 3000
	fast := newServer(t, testutil.SQLite, func(c *api.Config) { c.Limits.MaxResponseBytes = limit })
	slow := newServer(t, testutil.SQLite, func(c *api.Config) {
		c.Limits.MaxResponseBytes = limit
		*c = api.WithoutFastPath(*c)
	})
	alice := mint(t, "alice")
	for _, srv := range []*testServer{fast, slow} {
		for range 20 {
			srv.createTask(t, alice, strings.Repeat("y", 190), false)
		}
	}
	for _, tt := range []struct {
		name    string
		query   string
		refused bool
	}{
		{"a list under the limit is served", `{ tasks(first: 10) { nodes { title } } }`, false}, // about 2 KB
		{"a list over it is refused", `{ tasks(first: 20) { nodes { title } } }`, true},         // about 4 KB
		{"edges over it are refused", `{ tasks(first: 20) { edges { node { title } } } }`, true},
		{"edges with cursors over it are refused", `{ tasks(first: 20) { edges { cursor node { title } } } }`, true},
		{"tasks over it are refused", `{ ` + repeated(20, `a%d: task(id: "1") { title }`) + ` }`, true},
		{"lists each under it, together over it, are refused",
			`{ a: tasks(first: 8) { nodes { title } } b: tasks(first: 8) { nodes { title } } }`, true},
		{"mutation results over it are refused",
			`mutation { ` + repeated(16, `a%d: toggleTask(id: "2") { title }`) + ` }`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, srv := range []struct {
				name string
				*testServer
			}{{"with the fast path", fast}, {"without", slow}} {
				r := srv.gql(t, alice, tt.query, nil)
				if !tt.refused {
					r.mustOK(t, nil)
					continue
				}
				if r.Status != http.StatusOK || len(r.Errors) != 1 || r.Errors[0].Code() != api.CodeComplexityLimitExceeded || string(r.Data) != "null" {
					t.Errorf("%s: want 200, data null and one COMPLEXITY_LIMIT_EXCEEDED, got %d: %.300s", srv.name, r.Status, r.Body)
				}
			}
		})
	}
}

// TestPanicInFastPathIsMaskedAndServerKeepsServing makes the fast path
// panic as it writes: the panic is recovered by the field, as one in a
// resolver is, into INTERNAL_SERVER_ERROR, logged with its stack, and the
// server goes on serving.
func TestPanicInFastPathIsMaskedAndServerKeepsServing(t *testing.T) {
	t.Parallel()
	var panics atomic.Bool
	srv := newServer(t, testutil.SQLite, func(c *api.Config) {
		*c = api.WithFastPathHook(*c, func() {
			if panics.Load() {
				panic("fast path test panic")
			}
		})
	})
	alice := mint(t, "alice")
	created := srv.createTask(t, alice, "a task", false)
	panics.Store(true)

	for _, tt := range []struct {
		name, query, data string
		path              []any
	}{
		{"in a list, the null goes up to data", `{ me { id } tasks { nodes { id } } }`, `null`, []any{"tasks", "nodes"}},
		{"in edges", `{ tasks { edges { node { id } } } }`, `null`, []any{"tasks", "edges"}},
		{"in a nullable task, the task is null", `{ me { id } task(id: "` + created.ID + `") { id } }`, `{"me":{"id":"alice"},"task":null}`, []any{"task"}},
		{"in a mutation's result", `mutation { toggleTask(id: "` + created.ID + `") { id } }`, `null`, []any{"toggleTask"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.gql(t, alice, tt.query, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", r.Status, r.Body)
			}
			e := r.mustError(t, api.CodeInternal)
			wantMaskedInternalError(t, r, e)
			if fmt.Sprint(e.Path) != fmt.Sprint(tt.path) {
				t.Errorf("path = %v, want %v", e.Path, tt.path)
			}
			if string(r.Data) != tt.data {
				t.Errorf("data = %s, want %s", r.Data, tt.data)
			}
			wantLogged(t, srv, r.Header.Get("X-Request-Id"), "panic", "fast path test panic")
		})
	}

	// The toggle committed before its answer was written; the server
	// still answers.
	panics.Store(false)
	var data struct{ Tasks struct{ Nodes []task } }
	srv.gql(t, alice, `{ tasks { nodes { `+taskFields+` } } }`, nil).mustOK(t, &data)
	if len(data.Tasks.Nodes) != 1 || data.Tasks.Nodes[0].ID != created.ID || !data.Tasks.Nodes[0].Completed {
		t.Errorf("after the panics, tasks = %+v, want the one created, toggled", data.Tasks.Nodes)
	}
}
