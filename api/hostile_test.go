package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
)

// The bounds of CONTRACT §7 on what one request may cost the server: about
// 100 ms of CPU and 50 MB of memory, to answer or to refuse.
const (
	maxRequestCPU   = 100 * time.Millisecond
	maxRequestBytes = 50 << 20
	maxAnswerBytes  = 10 << 20
)

// introspectionFragments are the fragments of the standard introspection
// query, for documents that spread them in shapes of their own.
var introspectionFragments = introspectionQuery[strings.Index(introspectionQuery, "fragment FullType"):]

// repeated is n copies of format, each given its index.
func repeated(n int, format string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, format+" ", i)
	}
	return b.String()
}

// hostileRequest is a request of TestHostileDocumentsCostABoundedAmount.
type hostileRequest struct {
	name    string
	token   string
	query   string
	refused bool // by default with COMPLEXITY_LIMIT_EXCEEDED and 200
	// Optional: variables, the Accept header, and the code and status of
	// a refusal of another kind.
	vars   map[string]any
	accept string
	code   string
	status int
}

// doc is a hostileRequest of a document alone.
func doc(name, token, query string, refused bool) hostileRequest {
	return hostileRequest{name: name, token: token, query: query, refused: refused}
}

// TestHostileDocumentsCostABoundedAmount sends the documents of the audit
// of issue 10 (F1, F2, F3) and the worst ones we could build under each
// limit, signed in and not, and checks that each is refused or answered
// within the bounds of CONTRACT §7, measured in this process: CPU time,
// bytes allocated and the answer's size. It runs alone (not in parallel),
// so that the process's CPU is the request's; `go test -v` prints the
// figures.
func TestHostileDocumentsCostABoundedAmount(t *testing.T) {
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	// F3's user: 192 tasks of 200 + 1,000 characters of "a".
	long := strings.Repeat("a", 200)
	for range 192 {
		r := srv.gql(t, alice, `mutation($t: String!, $d: String) { createTask(input: {title: $t, description: $d}) { id } }`,
			map[string]any{"t": long, "d": strings.Repeat("a", 1000)})
		r.mustOK(t, nil)
	}
	search := strings.Repeat("a", 199) + "b"
	searchField := `tasks(first: 1, filter: {search: "` + search + `"}) { nodes { id } }`

	for _, tt := range []hostileRequest{
		doc("F1: introspection fragments nested 60 × 40 deep", "",
			"fragment S on __Schema { "+repeated(40, "t%d: types { ...FullType }")+"} { "+
				repeated(60, "a%d: __schema { ...S }")+"} "+introspectionFragments, true),
		doc("F1: types { ...FullType } aliased as often as the limits allow", "",
			"{ __schema { "+repeated(4, "t%d: types { ...FullType }")+"} } "+introspectionFragments, false),
		doc("the standard introspection query", "", introspectionQuery, false),
		doc("F2: 9,990 __typename", "", "{ "+strings.Repeat("__typename ", 9990)+"}", true),
		doc("F2: 9,000 titles in one selection", alice, "{ tasks { nodes { "+strings.Repeat("title ", 9000)+"} } }", true),
		doc("F2: 3,000 aliased titles (9,000 tokens), each document new", alice, "{ tasks { nodes { "+repeated(3000, "t%d: title")+"} } }", true),
		doc("the widest selection set allowed, all one name", "",
			"{ "+strings.Repeat("__typename ", api.DefaultMaxSetSelections)+"}", false),
		doc("the most selections allowed, in sets as wide as allowed", "",
			"{ "+repeated(api.DefaultMaxSelections/(api.DefaultMaxSetSelections+1), "a%d: __schema { queryType { "+strings.Repeat("name ", api.DefaultMaxSetSelections)+"} }")+"}", false),
		doc("same-named fields whose merged selections are as wide as allowed", "",
			"{ "+strings.Repeat("a: __schema { queryType { "+strings.Repeat("name ", api.DefaultMaxSetSelections/2)+"} } ", 2)+
				repeated(6, "b%d: __schema { queryType { "+strings.Repeat("name ", api.DefaultMaxSetSelections)+"} }")+"}", false),
		doc("same-named fields whose merged selections are too wide", "",
			"{ "+strings.Repeat("a: __schema { queryType { "+strings.Repeat("name ", api.DefaultMaxSetSelections)+"} } ", 7)+"}", true),
		doc("fragments spread into one set past its width", "",
			"fragment F on Query { "+repeated(200, "f%d: __typename")+"} { ...F ... on Query { ...F } }", true),
		doc("F3: 94 searches of 200 characters over long tasks", alice, "{ "+repeated(94, "s%d: "+searchField)+"}", true),
		doc("the most searches of 200 characters the cost limit allows", alice,
			"{ "+repeated(api.DefaultMaxCost/(51+200*10+2), "s%d: "+searchField)+"}", false),
		{name: "F5: a page size given as a string", token: alice,
			query: "query($n: Int) { " + repeated(26, "a%d: tasks(first: $n) { nodes { id title } }") + "}",
			vars:  map[string]any{"n": "100"}, refused: true, code: "GRAPHQL_VALIDATION_FAILED", status: http.StatusOK},
		{name: "F6: a subscription over a POST that accepts multipart/mixed", token: alice,
			query: "subscription { taskChanged { kind task { id } } }", accept: "multipart/mixed;deferSpec=20220824, application/json",
			refused: true, code: "", status: http.StatusBadRequest},
		doc("three full pages", alice, "{ "+repeated(3, "p%d: tasks(first: 100) { edges { cursor node { id title description completed createdAt updatedAt } } pageInfo { hasNextPage endCursor } totalCount }")+"}", false),
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"query": tt.query, "variables": tt.vars})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			cost := testutil.Measure(func() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if tt.token != "" {
					req.Header.Set("Authorization", "Bearer "+tt.token)
				}
				if tt.accept != "" {
					req.Header.Set("Accept", tt.accept)
				}
				srv.Handler.ServeHTTP(rec, req)
			})
			r := decodeResponse(t, rec.Code, rec.Header(), rec.Body.Bytes())
			t.Logf("FIGURE %s: %d bytes sent, %v CPU, %.1f MB allocated, %d bytes answered", tt.name, len(body), cost.CPU.Round(time.Millisecond), float64(cost.Bytes)/(1<<20), rec.Body.Len())
			if tt.refused {
				code, status := tt.code, tt.status
				if code == "" && status == 0 {
					code, status = api.CodeComplexityLimitExceeded, http.StatusOK
				}
				if r.Status != status || len(r.Errors) == 0 || r.HasData() || r.Errors[0].Code() != code {
					t.Errorf("want a request error %d %q, got %d: %.300s", status, code, r.Status, r.Body)
				}
			} else if len(r.Errors) > 0 || !r.HasData() {
				t.Errorf("want an answer, got %d: %.300s", r.Status, r.Body)
			}
			// The race detector multiplies CPU time unevenly (twentyfold
			// in SQLite's code): the bound holds without it.
			if cost.CPU > maxRequestCPU && !testutil.Race {
				t.Errorf("the request cost %v of CPU, above %v", cost.CPU, maxRequestCPU)
			}
			if cost.Bytes > maxRequestBytes {
				t.Errorf("the request allocated %d bytes, above %d", cost.Bytes, maxRequestBytes)
			}
			if rec.Body.Len() > maxAnswerBytes {
				t.Errorf("the answer is %d bytes, above %d", rec.Body.Len(), maxAnswerBytes)
			}
		})
	}
}
