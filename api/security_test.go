package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

// The security suite: hostile input over HTTP, through api.New, the real
// verifier and a fresh database of each dialect. Whatever comes in, the
// server answers with data or a client error, never a 500 or an internal
// error, and no answer tells anything of its internals.

// hostileStrings are sent in every string input: SQL, LIKE and escape
// characters, Bun's placeholder, unicode, control characters and NUL.
var hostileStrings = []string{
	`'; DROP TABLE task; --`,
	`Robert'); DROP TABLE task;--`,
	`" OR "1"="1`,
	`1 OR 1=1`,
	`%`, `_`, `%_%`, `!`, `!%`, `100%_done`,
	`\`, `\\`, `\'`, `\%`, `C:\Users\x`,
	`?`, `$1`, `?0 ?1`,
	`🦀 ünïcödé ẞ 𝔘 日本語`,
	"\u202eright-to-left\u200b\u00ad",
	"line\nbreak\ttab\r\x1b[31m",
	"nul\x00byte",
	"\x00",
	`<script>alert(1)</script>`,
	`{"$gt": ""}`,
	strings.Repeat("x", 201),
}

// internalLeaks are what no response may contain: SQL, driver messages,
// file paths, stack traces, and the server's secrets.
var internalLeaks = []string{
	"SQLSTATE", "syntax error at", "no such table", "no such column", `relation "`, "INSERT INTO", "SELECT ",
	"UPDATE task", "DELETE FROM", "database is", "sql:", "pgx", "pgconn", "sqlite", "SQLITE_", "driver:",
	".go:", "/root/", "/usr/", "/tmp/", "goroutine ", "panic", "runtime.",
	string(testSecret),
}

// checkNoLeak fails the test when a response shows an internal error or
// an internal detail.
func checkNoLeak(t *testing.T, what string, r *response) {
	t.Helper()
	if r.Status >= 500 {
		t.Errorf("%s: status %d: %s", what, r.Status, r.Body)
	}
	for _, e := range r.Errors {
		// A refusal of the HTTP layer (4xx) may have no code; an error of an
		// operation that ran must have one a client can act on.
		if e.Code() == api.CodeInternal || (e.Code() == "" && r.Status < 400) {
			t.Errorf("%s: internal error or no code: %s", what, r.Body)
		}
	}
	// Only the errors: data holds what the client stored, verbatim.
	errs, _ := json.Marshal(r.Errors)
	for _, leak := range internalLeaks {
		if strings.Contains(string(errs), leak) {
			t.Errorf("%s: the errors contain %q: %s", what, leak, errs)
		}
	}
}

// TestHostileStringsAreStoredVerbatimOrRefused sends each hostile string in
// every string input and in cursors: each is stored exactly as sent (after
// trimming), or refused with BAD_USER_INPUT naming the field; the task
// table is intact afterwards, holding exactly what was acknowledged.
func TestHostileStringsAreStoredVerbatimOrRefused(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d, func(c *api.Config) { c.Limits.CostBudget = 1 << 40 })
		alice := mint(t, "alice")
		target := srv.createTask(t, alice, "target", false)
		acknowledged := 1

		// wantStoredOrRefused checks one answer: got is the stored value
		// (nil for null) when the field was accepted.
		wantStoredOrRefused := func(t *testing.T, what, field, sent string, r *response, got func() *string) bool {
			t.Helper()
			checkNoLeak(t, what, r)
			if len(r.Errors) > 0 {
				e := r.mustError(t, api.CodeBadUserInput)
				if e.Extensions["field"] != field {
					t.Errorf("%s: extensions.field = %v, want %s", what, e.Extensions["field"], field)
				}
				return false
			}
			want := strings.TrimSpace(sent)
			if g := got(); (g == nil && want != "") || (g != nil && *g != want) {
				t.Errorf("%s: stored %s, want %q", what, fmtPtr(g), want)
			}
			return true
		}

		for _, s := range hostileStrings {
			name := s
			if len(name) > 30 {
				name = name[:30]
			}
			t.Run(name, func(t *testing.T) {
				var created struct{ CreateTask *task }
				r := srv.gql(t, alice, `mutation($t: String!) { createTask(input: {title: $t}) { `+taskFields+` } }`, map[string]any{"t": s})
				r.decode(t, &created)
				if wantStoredOrRefused(t, "createTask title", "title", s, r, func() *string { return &created.CreateTask.Title }) {
					acknowledged++
					// What was acknowledged reads back the same.
					var read struct{ Task *task }
					srv.gql(t, alice, `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": created.CreateTask.ID}).mustOK(t, &read)
					if read.Task == nil || !equalTask(*read.Task, *created.CreateTask) {
						t.Errorf("read back %+v, created %+v", read.Task, created.CreateTask)
					}
				}

				r = srv.gql(t, alice, `mutation($d: String) { createTask(input: {title: "d", description: $d}) { `+taskFields+` } }`, map[string]any{"d": s})
				r.decode(t, &created)
				if wantStoredOrRefused(t, "createTask description", "description", s, r, func() *string { return created.CreateTask.Description }) {
					acknowledged++
				}

				var updated struct{ UpdateTask *task }
				r = srv.gql(t, alice, `mutation($id: ID!, $t: String) { updateTask(id: $id, input: {title: $t}) { `+taskFields+` } }`, map[string]any{"id": target.ID, "t": s})
				r.decode(t, &updated)
				wantStoredOrRefused(t, "updateTask title", "title", s, r, func() *string { return &updated.UpdateTask.Title })
				r = srv.gql(t, alice, `mutation($id: ID!, $d: String) { updateTask(id: $id, input: {description: $d}) { `+taskFields+` } }`, map[string]any{"id": target.ID, "d": s})
				r.decode(t, &updated)
				wantStoredOrRefused(t, "updateTask description", "description", s, r, func() *string { return updated.UpdateTask.Description })

				// search matches s literally, case aside: every task it finds
				// holds s.
				var found struct {
					Tasks struct {
						TotalCount int
						Nodes      []task
					}
				}
				r = srv.gql(t, alice, `query($s: String) { tasks(first: 100, filter: {search: $s}) { totalCount nodes { `+taskFields+` } } }`, map[string]any{"s": s})
				r.decode(t, &found)
				checkNoLeak(t, "search", r)
				if len(r.Errors) > 0 {
					if e := r.mustError(t, api.CodeBadUserInput); e.Extensions["field"] != "filter.search" {
						t.Errorf("search: field = %v", e.Extensions["field"])
					}
				} else {
					for _, n := range found.Tasks.Nodes {
						if !containsFold(n.Title, s) && (n.Description == nil || !containsFold(*n.Description, s)) {
							t.Errorf("search %q found %q / %s, which does not hold it", s, n.Title, fmtPtr(n.Description))
						}
					}
				}

				// As an id, nothing here is one: BAD_USER_INPUT on field id.
				for _, q := range []string{
					`query($id: ID!) { task(id: $id) { id } }`,
					`mutation($id: ID!) { updateTask(id: $id, input: {title: "x"}) { id } }`,
					`mutation($id: ID!) { toggleTask(id: $id) { id } }`,
					`mutation($id: ID!) { deleteTask(id: $id) { id } }`,
				} {
					r := srv.gql(t, alice, q, map[string]any{"id": s})
					checkNoLeak(t, "id", r)
					if e := r.mustError(t, api.CodeBadUserInput); e.Extensions["field"] != "id" {
						t.Errorf("id %q: field = %v", s, e.Extensions["field"])
					}
				}

				// As a cursor, raw and inside a well-formed cursor.
				for _, arg := range []string{"after", "before"} {
					r := srv.gql(t, alice, `query($c: String) { tasks(`+arg+`: $c) { nodes { id } } }`, map[string]any{"c": s})
					checkNoLeak(t, "cursor", r)
					if e := r.mustError(t, api.CodeBadUserInput); e.Extensions["field"] != arg {
						t.Errorf("cursor %q: field = %v", s, e.Extensions["field"])
					}
					for _, field := range []string{"TITLE", "CREATED_AT"} {
						c := craftCursor(t, field, s)
						r := srv.gql(t, alice, `query($c: String, $f: TaskOrderField!) { tasks(orderBy: {field: $f, direction: ASC}, `+arg+`: $c) { nodes { id } } }`,
							map[string]any{"c": c, "f": field})
						checkNoLeak(t, "crafted cursor", r)
						if len(r.Errors) > 0 {
							r.mustError(t, api.CodeBadUserInput)
						}
					}
				}

				// As an enum value, gqlgen refuses it before it runs.
				r = srv.gql(t, alice, `query($o: TaskOrder) { tasks(orderBy: $o) { nodes { id } } }`,
					map[string]any{"o": map[string]any{"field": s, "direction": "ASC"}})
				checkNoLeak(t, "orderBy", r)
				if len(r.Errors) == 0 {
					t.Errorf("orderBy.field %q accepted", s)
				}
			})
		}

		// The task table is there, holding exactly what was acknowledged.
		if n := srv.taskCount(t); n != acknowledged {
			t.Errorf("the task table holds %d tasks, %d were acknowledged", n, acknowledged)
		}
		var stats struct{ TaskStats struct{ Total int } }
		srv.gql(t, alice, `{ taskStats { total } }`, nil).mustOK(t, &stats)
		if stats.TaskStats.Total != acknowledged {
			t.Errorf("taskStats.total = %d, want %d", stats.TaskStats.Total, acknowledged)
		}
	})
}

// craftCursor makes a well-formed cursor for orderBy field whose value is s,
// as a client who read the format could.
func craftCursor(t *testing.T, field, s string) string {
	t.Helper()
	code := map[string]string{"TITLE": "t", "CREATED_AT": "c"}[field]
	b, err := json.Marshal(map[string]any{"f": code, "v": s, "i": 1})
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// TestHostileTokensAreRefusedWithoutALeak sends the token shapes an
// attacker tries: each is 401 UNAUTHENTICATED, runs nothing, and the answer
// quotes neither the token nor a secret.
func TestHostileTokensAreRefusedWithoutALeak(t *testing.T) {
	t.Parallel()
	const issuer = "https://auth.example.test"
	verifier, err := auth.New(context.Background(), auth.Config{Secret: testSecret, Issuer: issuer, Audience: issuer})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Verifier = verifier })

	sign := func(method jwt.SigningMethod, key any, mods ...func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"sub": "alice", "iss": issuer, "aud": issuer, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		for _, m := range mods {
			m(c)
		}
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	set := func(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	valid := sign(jwt.SigningMethodHS256, testSecret)
	parts := strings.Split(valid, ".")

	for _, tt := range []struct{ name, token string }{
		{"alg none", b64(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."},
		{"alg none with the valid signature", b64(`{"alg":"none"}`) + "." + parts[1] + "." + parts[2]},
		{"HS384 with the secret", sign(jwt.SigningMethodHS384, testSecret)},
		{"HS256 with another secret", sign(jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!"))},
		{"expired", sign(jwt.SigningMethodHS256, testSecret, set("exp", time.Now().Add(-time.Hour).Unix()), set("iat", time.Now().Add(-2*time.Hour).Unix()))},
		{"nbf in the future", sign(jwt.SigningMethodHS256, testSecret, set("nbf", time.Now().Add(time.Hour).Unix()))},
		{"iat in the future", sign(jwt.SigningMethodHS256, testSecret, set("iat", time.Now().Add(time.Hour).Unix()))},
		{"wrong issuer", sign(jwt.SigningMethodHS256, testSecret, set("iss", "https://evil.example"))},
		{"wrong audience", sign(jwt.SigningMethodHS256, testSecret, set("aud", "https://evil.example"))},
		{"missing sub", sign(jwt.SigningMethodHS256, testSecret, func(c jwt.MapClaims) { delete(c, "sub") })},
		{"payload swapped after signing", parts[0] + "." + b64(`{"sub":"admin","iss":"`+issuer+`","aud":"`+issuer+`","exp":9999999999}`) + "." + parts[2]},
		{"malformed base64", parts[0] + ".!!!." + parts[2]},
		{"huge", sign(jwt.SigningMethodHS256, testSecret, set("pad", strings.Repeat("x", 64<<10)))},
		{"not a JWT", "'; DROP TABLE task; --"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.gql(t, tt.token, `mutation { createTask(input: {title: "as someone else"}) { id } }`, nil)
			r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
			checkNoLeak(t, tt.name, r)
			for _, seg := range strings.Split(tt.token, ".") {
				if len(seg) >= 8 && strings.Contains(string(r.Body), seg) {
					t.Errorf("the answer quotes the token")
				}
			}
		})
	}
	if n := srv.taskCount(t); n != 0 {
		t.Errorf("refused tokens created %d tasks", n)
	}
	// The fixture itself is good: the valid token passes.
	srv.gql(t, valid, `{ me { id } }`, nil).mustOK(t, nil)
}

// TestMalformedRequestsLeakNothing sends broken bodies and documents and
// scans every answer.
func TestMalformedRequestsLeakNothing(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	for _, body := range []string{
		``, `{`, `[]`, `[{"query":"{ me { id } }"}]`, `null`, `"query"`, `{"query": 1}`, `{"query":"{ me { id "}`,
		`{"query":"{ me { id } }","variables":"x"}`, `{"query":"query($n: Int) { tasks(first: $n) { nodes { id } } }","variables":{"n":"100"}}`,
		`{"query":"query($n: Int) { tasks(first: $n) { nodes { id } } }","variables":{"n":1e400}}`,
		`{"query":"{ tasks(first: 99999999999) { nodes { id } } }"}`, `{"query":"{ tasks(first: -1) { nodes { id } } }"}`,
		`{"query":"{ task(id: \"9223372036854775808\") { id } }"}`, `{"query":"{ me { id } }","operationName":"Nope"}`,
		`{"query":"query A { me { id } } query A { me { id } }"}`, `{"query":"subscription { taskChanged { kind } }"}`,
		`{"query":"{ __type(name: \"\\u0000\") { name } }"}`, `{"query":"` + strings.Repeat("{", 5000) + `"}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"'; DROP TABLE task; --"}}}`,
	} {
		r := srv.do(t, request{Token: alice, Body: strings.NewReader(body)})
		checkNoLeak(t, "body "+body[:min(len(body), 40)], r)
	}
}
