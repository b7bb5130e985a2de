package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/taskql/server/api"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// aliased repeats field n times under aliases a0, a1, ….
func aliased(n int, field string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: %s", i, field)
	}
	b.WriteString(" }")
	return b.String()
}

// doublingFragments is a document of n fragments, each spreading the next
// one twice, around field: 2^n copies of field once expanded.
func doublingFragments(n int, field string) string {
	var b strings.Builder
	b.WriteString("query { ...F0 }\n")
	for i := range n {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query { %s }\n", n, field)
	return b.String()
}

// TestCostlyDocumentsAreRefusedBeforeTheDatabase pins the cost limit:
// aliases, fragments and page sizes all count, and a refused document runs
// no query at all.
func TestCostlyDocumentsAreRefusedBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	queries := srv.countQueries()

	tests := []struct {
		name  string
		query string
		vars  map[string]any
	}{
		{"500 aliased tasks(first: 100)", aliased(500, `tasks(first: 100) { edges { node { id } } }`), nil},
		{"500 aliased tasks(first: $n) with n = 100", strings.Replace(aliased(500, `tasks(first: $n) { nodes { id } }`), "{", "query($n: Int) {", 1), map[string]any{"n": 100}},
		{"200 aliased tasks with the default page size", aliased(200, `tasks { nodes { id title } }`), nil},
		{"100 aliased taskStats: a database round trip each", aliased(100, `taskStats { total }`), nil},
		{"100 aliased createTask", strings.Replace(aliased(100, `createTask(input: {title: "x"}) { id }`), "{", "mutation {", 1), nil},
		{"fragments doubling 40 times", doublingFragments(40, `tasks(first: 100) { nodes { id } }`), nil},
		{"fragments doubling 12 times around a cheap field", doublingFragments(12, `me { id }`), nil},
		{"a connection fragment spread in 30 aliases", `fragment Page on TaskConnection { edges { cursor node { id title description } } nodes { id } } ` +
			aliased(30, `tasks(first: 100) { ...Page }`), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := queries.n.Load()
			start := time.Now()
			r := srv.gql(t, alice, tt.query, tt.vars)
			r.mustBeRequestError(t, http.StatusOK, api.CodeComplexityLimitExceeded)
			if !strings.Contains(r.Errors[0].Message, "limit") {
				t.Errorf("message %q does not say which limit", r.Errors[0].Message)
			}
			if n := queries.n.Load() - before; n != 0 {
				t.Errorf("a refused document ran %d database queries", n)
			}
			// Measuring must not cost what running would: 2^40 spreads
			// are measured once each.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusing took %v", d)
			}
		})
	}
	if n := srv.taskCount(t); n != 0 {
		t.Errorf("refused mutations created %d tasks", n)
	}
}

// The sizes of the schema that introspection costs depend on: 31 types
// (the introspection types and built-in scalars included), 3 fields a type
// on average (rounded up), ofType at most three deep ([Task!]!).
const (
	schemaTypes   = 31
	fieldsPerType = 3
	// standardIntrospectionCost is a quarter of the default limit.
	standardIntrospectionCost = 1224
)

// TestCostModel pins how a document's cost is counted, through a server
// whose limit refuses everything and so reports every cost.
func TestCostModel(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Limits.MaxCost = 1 })
	alice := mint(t, "alice")
	for _, tt := range []struct {
		name  string
		query string
		vars  map[string]any
		cost  float64
	}{
		{"a root field is a database round trip", `{ me { id } }`, nil, 1 + 50 + 1},
		{"each alias counts", `{ a: me { id } b: me { id } }`, nil, 2 * 52},
		{"first multiplies the list fields", `{ tasks(first: 100) { nodes { id } } }`, nil, 51 + 1 + 100},
		{"last too", `{ tasks(last: 10) { nodes { id title } } }`, nil, 51 + 1 + 10*2},
		{"first from a variable", `query($n: Int) { tasks(first: $n) { nodes { id } } }`, map[string]any{"n": 7}, 51 + 1 + 7},
		{"the default page is 20", `{ tasks { edges { cursor node { id } } } }`, nil, 51 + 1 + 20*(1+2)},
		{"a page size above 100 counts as 100 (it is refused when it runs)", `{ tasks(first: 1000) { nodes { id } } }`, nil, 51 + 1 + 100},
		{"pageInfo and totalCount are not multiplied; totalCount is a round trip", `{ tasks(first: 100) { pageInfo { hasNextPage } totalCount } }`, nil, 51 + 2 + 51},
		{"fragments count at each spread", `fragment N on TaskConnection { nodes { id } } { tasks(first: 10) { ...N ...N } }`, nil, 51 + 2*11},
		{"inline fragments count", `{ tasks(first: 10) { ... on TaskConnection { nodes { id } } } }`, nil, 51 + 11},
		{"mutations", `mutation { a: createTask(input: {title: "x"}) { id title } b: deleteCompletedTasks }`, nil, 53 + 51},
		{"__typename and the names of introspection are free", `{ __typename me { id } }`, nil, 52},
		{"each introspection object counts", `{ a: __type(name: "Task") { name kind } b: __type(name: "User") { name } }`, nil, 2},
		{"an introspection list counts each item the schema has", `{ __schema { types { name } } }`, nil, 1 + schemaTypes},
		{"lists nest by their means over the schema", `{ __schema { types { fields { name } } } }`, nil, 1 + schemaTypes*(1+fieldsPerType)},
		{"ofType costs only as deep as the schema wraps types", `{ __type(name: "Task") { ` + strings.Repeat("ofType { ", 8) + "name" + strings.Repeat(" }", 8) + ` } }`, nil, 1 + 3},
		{"a search costs by its length", `{ tasks(first: 0, filter: {search: "abcd"}) { totalCount } }`, nil, 51 + 4*10 + 51},
		{"the standard introspection query", introspectionQuery, nil, standardIntrospectionCost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.gql(t, alice, tt.query, tt.vars)
			r.mustBeRequestError(t, http.StatusOK, api.CodeComplexityLimitExceeded)
			if got := r.Errors[0].Extensions["cost"]; got != tt.cost {
				t.Errorf("cost = %v, want %v", got, tt.cost)
			}
		})
	}
}

// TestLimitsAdmitWhatClientsSend pins CONTRACT §7 from the other side: the
// standard introspection query, a full page and the IDE's example run.
func TestLimitsAdmitWhatClientsSend(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	srv.createTask(t, alice, "one", false)
	page := `tasks(first: 100) {
		edges { cursor node { ` + taskFields + ` } }
		nodes { ` + taskFields + ` }
		pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
		totalCount
	}`
	for _, tt := range []struct{ name, query string }{
		{"standard introspection", introspectionQuery},
		{"two full pages, me and taskStats", `{ me { id email name } active: ` + strings.Replace(page, "first: 100", "first: 100, filter: {completed: false}", 1) +
			` done: ` + strings.Replace(page, "first: 100", "first: 100, filter: {completed: true}", 1) + ` taskStats { total completed active } }`},
		{"the IDE's example query", `query MyTasks { me { id email name } tasks(first: 20) { nodes { ` + taskFields + ` } pageInfo { hasNextPage endCursor } totalCount } taskStats { total completed active } }`},
		{"__typename everywhere", `{ __typename me { __typename id } tasks { __typename edges { __typename node { __typename id } } } }`},
		{"a page through fragments", `fragment T on Task { ` + taskFields + ` } fragment P on TaskConnection { nodes { ...T } edges { node { ...T } } } { tasks(first: 100) { ...P } }`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv.gql(t, alice, tt.query, nil).mustOK(t, nil)
		})
	}
}

// TestDepthLimit pins MaxDepth: fields nest at most that deep, introspection
// included, and fragments do not hide depth.
func TestDepthLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Limits.MaxDepth = 4 })
	alice := mint(t, "alice")
	for _, tt := range []struct {
		name  string
		query string
		ok    bool
	}{
		{"4 deep", `{ tasks { edges { node { id } } } }`, true},
		{"4 deep introspection", `{ __schema { types { fields { name } } } }`, true},
		{"5 deep introspection", `{ __schema { types { fields { type { name } } } } }`, false},
		{"5 deep through fragments", `fragment N on TaskEdge { node { id } } fragment E on TaskConnection { edges { ...N } } { a: __type(name: "Task") { fields { type { ofType { name } } } } tasks { ...E } }`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.gql(t, alice, tt.query, nil)
			if tt.ok {
				r.mustOK(t, nil)
				return
			}
			r.mustBeRequestError(t, http.StatusOK, api.CodeComplexityLimitExceeded)
		})
	}

	t.Run("the default refuses an ofType chain 21 deep", func(t *testing.T) {
		srv := newServer(t, testutil.SQLite)
		q := `{ __type(name: "Task") { ` + strings.Repeat("ofType { ", 19) + "name" + strings.Repeat(" }", 19) + ` } }`
		srv.gql(t, "", q, nil).mustBeRequestError(t, http.StatusOK, api.CodeComplexityLimitExceeded)
	})
}

// TestIntrospectionListsNestAtMostThreeDeep pins gqlparser's
// MaxIntrospectionDepth rule (graphql-js's), a bound besides the cost
// limit: each nested list of types multiplies the work by the size of the
// schema.
func TestIntrospectionListsNestAtMostThreeDeep(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	srv.gql(t, "", `{ __schema { types { fields { type { fields { name } } } } } }`, nil).mustOK(t, nil)
	r := srv.gql(t, "", `{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }`, nil)
	r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_VALIDATION_FAILED")
}

func TestParserTokenLimit(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Limits.MaxTokens = 100 })
	alice := mint(t, "alice")
	srv.gql(t, alice, aliased(10, "me { id }"), nil).mustOK(t, nil) // 71 tokens
	r := srv.gql(t, alice, aliased(20, "me { id }"), nil)
	r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_PARSE_FAILED")
	if !strings.Contains(r.Errors[0].Message, "token limit") {
		t.Errorf("message = %q, want it to name the token limit", r.Errors[0].Message)
	}
}

// TestIntrospectionAndSuggestionsCanBeTurnedOff checks both switches, and
// that __typename, which clients add to every selection, always works.
func TestIntrospectionAndSuggestionsCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	on := newServer(t, testutil.SQLite)
	off := newServer(t, testutil.SQLite, func(c *api.Config) {
		c.Limits.DisableIntrospection = true
		c.Limits.DisableSuggestions = true
	})
	alice := mint(t, "alice")

	on.gql(t, "", introspectionQuery, nil).mustOK(t, nil)
	for _, q := range []string{introspectionQuery, `{ __type(name: "Task") { name } }`, `{ me { id } __schema { queryType { name } } }`} {
		r := off.gql(t, alice, q, nil)
		r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_VALIDATION_FAILED")
		if !strings.Contains(r.Errors[0].Message, "introspection") {
			t.Errorf("message = %q, want it to say introspection is off", r.Errors[0].Message)
		}
	}
	var data struct {
		Typename string `json:"__typename"`
	}
	off.gql(t, alice, `{ __typename me { __typename id } }`, nil).mustOK(t, &data)
	if data.Typename != "Query" {
		t.Errorf("__typename = %q", data.Typename)
	}

	const typo = `{ tsks { nodes { id } } }`
	if r := on.gql(t, alice, typo, nil); !strings.Contains(string(r.Body), "Did you mean") {
		t.Errorf("suggestions on: no suggestion in %s", r.Body)
	}
	r := off.gql(t, alice, typo, nil)
	r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_VALIDATION_FAILED")
	if strings.Contains(string(r.Body), "Did you mean") || strings.Contains(string(r.Body), "tasks") {
		t.Errorf("suggestions off: the error suggests a field: %s", r.Body)
	}
}

// TestExecutionTimeoutCancelsTheDatabaseQuery makes requests wait for the
// database until the execution timeout: on PostgreSQL for a lock that
// another session holds on the task table, on SQLite (whose readers never
// wait, and whose writers' busy wait cannot be interrupted) for a
// connection of the pool. Each answers TIMEOUT at the limit; on PostgreSQL
// the blocked queries are cancelled on the server too, so no connection
// stays stuck; and the server serves again once the database does.
func TestExecutionTimeoutCancelsTheDatabaseQuery(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		const timeout = 500 * time.Millisecond
		// More requests than connections: waiting for a connection is
		// bounded too.
		const n = 8
		db := testutil.NewDB(t, d)
		srv := newServerWith(t, db, model.NewTasks(db), func(c *api.Config) { c.Limits.ExecutionTimeout = timeout })
		alice := mint(t, "alice")
		srv.createTask(t, alice, "before", false)

		var lockPID int
		var release func()
		if d == testutil.Postgres {
			db.SetMaxOpenConns(4) // one for the lock, three for n requests
			lockPID, release = lockTaskTable(t, db)
		} else {
			db.SetMaxOpenConns(1)
			release = holdConnection(t, db)
		}
		type result struct {
			r *response
			d time.Duration
		}
		results := make(chan result, n)
		for i := range n {
			go func() {
				start := time.Now()
				var r *response
				if i%2 == 0 {
					r = srv.gql(t, alice, `{ tasks { nodes { id } } }`, nil)
				} else {
					r = srv.gql(t, alice, `mutation { createTask(input: {title: "blocked"}) { id } }`, nil)
				}
				results <- result{r, time.Since(start)}
			}()
		}
		for range n {
			var res result
			select {
			case res = <-results:
			case <-time.After(timeout + 5*time.Second):
				t.Fatalf("requests still wait for the database %v after the execution timeout", 5*time.Second)
			}
			if res.r.Status != http.StatusOK {
				t.Fatalf("status %d: %s", res.r.Status, res.r.Body)
			}
			e := res.r.mustError(t, api.CodeTimeout)
			if e.Extensions["requestId"] != res.r.Header.Get("X-Request-Id") {
				t.Errorf("requestId %v, header %q", e.Extensions["requestId"], res.r.Header.Get("X-Request-Id"))
			}
			if res.d < timeout || res.d > timeout+2*time.Second {
				t.Errorf("answered after %v, want about %v", res.d, timeout)
			}
		}
		if d == testutil.Postgres {
			waitNoBlockedQueries(t, srv, lockPID)
		}
		release()
		var data struct{ Tasks struct{ Nodes []task } }
		srv.gql(t, alice, `{ tasks { nodes { id } } }`, nil).mustOK(t, &data)
		if len(data.Tasks.Nodes) != 1 {
			t.Errorf("after the wait: %d tasks, want 1 (the blocked creates were not acknowledged and must not be there)", len(data.Tasks.Nodes))
		}
		srv.createTask(t, alice, "after", false)
	})
}

// lockTaskTable takes a lock on the task table that blocks reads and
// writes, on a PostgreSQL connection of its own, until release is called.
// It returns the backend's pid.
func lockTaskTable(t *testing.T, db *bun.DB) (pid int, release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("lock connection: %v", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("pg_backend_pid: %v", err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE task IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatalf("lock: %v", err)
	}
	release = sync.OnceFunc(func() {
		tx.Rollback()
		conn.Close()
	})
	t.Cleanup(release)
	return pid, release
}

// holdConnection takes a connection of db's pool until release is called.
func holdConnection(t *testing.T, db *bun.DB) (release func()) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatalf("connection: %v", err)
	}
	release = sync.OnceFunc(func() { conn.Close() })
	t.Cleanup(release)
	return release
}

// waitNoBlockedQueries waits until no session waits for the lock held by
// the backend lockPID: the server's cancelled queries have really stopped
// on the server, not only in the client.
func waitNoBlockedQueries(t *testing.T, srv *testServer, lockPID int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		err := srv.DB.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))`, lockPID).Scan(context.Background(), &n)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d queries still wait for the lock 5s after their requests timed out: they were not cancelled", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
