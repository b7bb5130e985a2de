package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// fuzzMethods are the methods FuzzHandler picks from.
var fuzzMethods = []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodOptions, http.MethodDelete}

// FuzzHandler sends arbitrary bodies and headers to the whole handler, on
// a SQLite database: it never panics, never answers 5xx, and every JSON
// answer is well-formed with no internal error. For GET, the body is sent
// as the query string. Committed seeds are in testdata/fuzz; fresh ones
// with a valid token are added here.
func FuzzHandler(f *testing.F) {
	db := testutil.NewDB(f, testutil.SQLite)
	verifier, err := auth.New(context.Background(), auth.Config{Secret: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	h := api.New(api.Config{
		Tasks:              model.NewTasks(db),
		Verifier:           verifier,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		CORSAllowedOrigins: []string{"http://localhost:3000"},
	})
	bearer := "Bearer " + mint(f, "fuzzer")
	for _, body := range []string{
		`{"query":"mutation($t: String!) { createTask(input: {title: $t}) { id title } }","variables":{"t":"fuzz"}}`,
		`{"query":"{ me { id } tasks(first: 5) { edges { cursor node { id title } } pageInfo { endCursor } totalCount } taskStats { total } }"}`,
		`{"query":"query($a: String) { tasks(after: $a, orderBy: {field: TITLE, direction: ASC}) { nodes { id } } }","variables":{"a":"eyJmIjoidCIsInYiOiJ4IiwiaSI6MX0"}}`,
		`{"query":"mutation { updateTask(id: \"1\", input: {description: null}) { id } toggleTask(id: \"1\") { id } }"}`,
	} {
		f.Add(uint8(0), "application/json", "application/graphql-response+json", bearer, "", []byte(body))
	}
	f.Add(uint8(1), "", "", bearer, "req-1", []byte("query=%7B+me+%7B+id+%7D+%7D"))
	// Issue 10's shapes for the HTTP rules: clients that accept
	// multipart/mixed, bodies that are not GraphQL requests, and
	// variables of the wrong JSON type.
	const multipart = "multipart/mixed;deferSpec=20220824, application/json"
	for _, body := range []string{
		`{"query":"subscription { taskChanged { kind task { id } } }"}`,
		`{"query":"{ me { id ... @defer { email } } tasks(first: 2) { nodes { id ... @defer { title } } } }"}`,
		`[{"query":"{ __typename }"},{"query":"{ __typename }"}]`,
		`{"query":{"obj":"ect"},"variables":"x","extensions":0}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}`,
		`{"query":"query($n: Int, $f: TaskFilter) { tasks(first: $n, filter: $f) { totalCount } }","variables":{"n":"100","f":{"completed":"true","search":5}}}`,
	} {
		f.Add(uint8(0), "application/json", multipart, bearer, "", []byte(body))
	}
	f.Add(uint8(1), "", multipart, bearer, "", []byte("query=subscription%7BtaskChanged%7Bkind%7D%7D"))
	// And its documents that cost the server: introspection fragments
	// nested into each other, wide sets, fragments doubling, long
	// searches, a fragment cycle.
	for _, doc := range []string{
		"fragment S on __Schema { " + repeated(4, "t%d: types { ...FullType }") + "} { " + repeated(6, "a%d: __schema { ...S }") + "} " + introspectionFragments,
		"{ " + strings.Repeat("__typename ", 300) + "}",
		"{ tasks { nodes { " + repeated(100, "t%d: title") + "} } }",
		doublingFragments(20, "tasks(first: 100) { nodes { id } }"),
		"{ " + repeated(3, "s%d: tasks(first: 1, filter: {search: \""+strings.Repeat("a", 199)+"b\"}) { nodes { id } }") + "}",
		"fragment A on Query { ...B } fragment B on Query { ...A } { ...A }",
	} {
		body, err := json.Marshal(map[string]string{"query": doc})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(0), "application/json", "application/json", bearer, "", body)
	}

	f.Fuzz(func(t *testing.T, method uint8, contentType, accept, authorization, requestID string, body []byte) {
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		target := "/graphql"
		var r *http.Request
		if m == http.MethodGet {
			r = httptest.NewRequest(m, target, nil)
			r.URL.RawQuery = string(body)
		} else {
			r = httptest.NewRequest(m, target, bytes.NewReader(body))
		}
		for k, v := range map[string]string{"Content-Type": contentType, "Accept": accept, "Authorization": authorization, "X-Request-Id": requestID} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		if w.Code >= 500 {
			t.Fatalf("%s %q: status %d: %s", m, body, w.Code, w.Body)
		}
		if !strings.Contains(w.Header().Get("Content-Type"), "json") {
			return
		}
		var resp struct {
			Data   json.RawMessage `json:"data"`
			Errors []struct {
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("answer is not JSON: %v: %s", err, w.Body)
		}
		for _, e := range resp.Errors {
			if e.Extensions["code"] == api.CodeInternal {
				t.Fatalf("%s %q: internal error: %s", m, body, w.Body)
			}
		}
	})
}
