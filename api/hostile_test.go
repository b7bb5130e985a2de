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

	for _, tt := range []struct {
		name    string
		token   string
		query   string
		refused bool // with COMPLEXITY_LIMIT_EXCEEDED
	}{
		{"F1: introspection fragments nested 60 × 40 deep", "",
			"fragment S on __Schema { " + repeated(40, "t%d: types { ...FullType }") + "} { " +
				repeated(60, "a%d: __schema { ...S }") + "} " + introspectionFragments, true},
		{"F1: types { ...FullType } aliased as often as the limits allow", "",
			"{ __schema { " + repeated(4, "t%d: types { ...FullType }") + "} } " + introspectionFragments, false},
		{"the standard introspection query", "", introspectionQuery, false},
		{"F2: 9,990 __typename", "", "{ " + strings.Repeat("__typename ", 9990) + "}", true},
		{"F2: 9,000 titles in one selection", alice, "{ tasks { nodes { " + strings.Repeat("title ", 9000) + "} } }", true},
		{"F2: 3,000 aliased titles (9,000 tokens), each document new", alice, "{ tasks { nodes { " + repeated(3000, "t%d: title") + "} } }", true},
		{"the widest selection set allowed, all one name", "",
			"{ " + strings.Repeat("__typename ", api.DefaultMaxSetSelections) + "}", false},
		{"the most selections allowed, in sets as wide as allowed", "",
			"{ " + repeated(api.DefaultMaxSelections/(api.DefaultMaxSetSelections+1), "a%d: __schema { queryType { "+strings.Repeat("name ", api.DefaultMaxSetSelections)+"} }") + "}", false},
		{"fragments spread into one set past its width", "",
			"fragment F on Query { " + repeated(200, "f%d: __typename") + "} { ...F ... on Query { ...F } }", true},
		{"F3: 94 searches of 200 characters over long tasks", alice, "{ " + repeated(94, "s%d: "+searchField) + "}", true},
		{"the most searches of 200 characters the cost limit allows", alice,
			"{ " + repeated(api.DefaultMaxCost/(51+200*10+2), "s%d: "+searchField) + "}", false},
		{"three full pages", alice, "{ " + repeated(3, "p%d: tasks(first: 100) { edges { cursor node { id title description completed createdAt updatedAt } } pageInfo { hasNextPage endCursor } totalCount }") + "}", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"query": tt.query})
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
				srv.Handler.ServeHTTP(rec, req)
			})
			r := decodeResponse(t, rec.Code, rec.Header(), rec.Body.Bytes())
			t.Logf("FIGURE %s: %d bytes sent, %v CPU, %.1f MB allocated, %d bytes answered", tt.name, len(body), cost.CPU.Round(time.Millisecond), float64(cost.Bytes)/(1<<20), rec.Body.Len())
			if tt.refused {
				if len(r.Errors) == 0 || r.Errors[0].Code() != api.CodeComplexityLimitExceeded {
					t.Errorf("want COMPLEXITY_LIMIT_EXCEEDED, got %d: %.300s", r.Status, r.Body)
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
