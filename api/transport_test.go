package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

func jsonBody(s string) io.Reader { return strings.NewReader(s) }

// TestStatusCodesFollowGraphQLOverHTTP checks the status, the media type and
// the shape of the answer to each kind of request CONTRACT §3 names.
func TestStatusCodesFollowGraphQLOverHTTP(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")

	tests := []struct {
		name  string
		req   request
		check func(t *testing.T, r *response)
	}{
		{
			name: "a POSTed query is 200 with data in application/json",
			req:  request{Token: alice, Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				var data struct{ Me struct{ ID string } }
				r.mustOK(t, &data)
				if data.Me.ID != "alice" {
					t.Errorf("me.id = %q, want alice", data.Me.ID)
				}
				wantMedia(t, r, mediaJSON)
			},
		},
		{
			name: "a POSTed query accepting graphql-response+json is answered in it",
			req:  request{Token: alice, Accept: mediaGraphQLResponse + ", application/json;q=0.9", Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustOK(t, nil)
				wantMedia(t, r, mediaGraphQLResponse)
			},
		},
		{
			name: "a body that is not JSON is 400",
			req:  request{Body: jsonBody(`{"query": "{ me { id } }"`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusBadRequest, "")
				wantMedia(t, r, mediaJSON)
			},
		},
		{
			name:  "a batch (JSON array) is 400",
			req:   request{Body: jsonBody(`[{"query":"{ __typename }"},{"query":"{ __typename }"}]`)},
			check: func(t *testing.T, r *response) { r.mustBeRequestError(t, http.StatusBadRequest, "") },
		},
		{
			name:  "two JSON objects in one body are 400",
			req:   request{Body: jsonBody(`{"query":"{ __typename }"} {"query":"{ __typename }"}`)},
			check: func(t *testing.T, r *response) { r.mustBeRequestError(t, http.StatusBadRequest, "") },
		},
		{
			name:  "variables that are not an object are 400",
			req:   request{Body: jsonBody(`{"query":"{ __typename }","variables":[1]}`)},
			check: func(t *testing.T, r *response) { r.mustBeRequestError(t, http.StatusBadRequest, "") },
		},
		{
			name: "a document that does not parse is 200 GRAPHQL_PARSE_FAILED under application/json",
			req:  request{Token: alice, Body: jsonBody(`{"query":"{ me { id "}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_PARSE_FAILED")
			},
		},
		{
			name: "a document that does not parse is 400 under graphql-response+json",
			req:  request{Accept: mediaGraphQLResponse, Body: jsonBody(`{"query":"query {"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusBadRequest, "GRAPHQL_PARSE_FAILED")
				wantMedia(t, r, mediaGraphQLResponse)
			},
		},
		{
			name: "an invalid document is 200 GRAPHQL_VALIDATION_FAILED under application/json",
			req:  request{Token: alice, Accept: mediaJSON, Body: jsonBody(`{"query":"{ me { id password } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_VALIDATION_FAILED")
				wantMedia(t, r, mediaJSON)
			},
		},
		{
			name: "an invalid document is 200 without an Accept header",
			req:  request{Body: jsonBody(`{"query":"{ nope }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_VALIDATION_FAILED")
				wantMedia(t, r, mediaJSON)
			},
		},
		{
			name: "an invalid document is 400 GRAPHQL_VALIDATION_FAILED under graphql-response+json",
			req:  request{Token: alice, Accept: mediaGraphQLResponse, Body: jsonBody(`{"query":"{ me { id password } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusBadRequest, "GRAPHQL_VALIDATION_FAILED")
				wantMedia(t, r, mediaGraphQLResponse)
			},
		},
		{
			name: "a variable of the wrong type fails validation, 200 under application/json",
			req:  request{Token: alice, Body: jsonBody(`{"query":"query($n: Int) { tasks(first: $n) { totalCount } }","variables":{"n":"ten"}}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusOK, "GRAPHQL_VALIDATION_FAILED")
			},
		},
		{
			name: "a variable that cannot be coerced is 400 under graphql-response+json",
			req:  request{Accept: mediaGraphQLResponse, Body: jsonBody(`{"query":"query($id: ID!) { __typename }","variables":{"id":null}}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusBadRequest, "GRAPHQL_VALIDATION_FAILED")
				wantMedia(t, r, mediaGraphQLResponse)
			},
		},
		{
			name: "a GET query with an Authorization header is 200",
			req:  request{Method: http.MethodGet, Path: "/graphql?query=%7B+me+%7B+id+%7D+%7D", Token: alice},
			check: func(t *testing.T, r *response) {
				var data struct{ Me struct{ ID string } }
				r.mustOK(t, &data)
				if data.Me.ID != "alice" {
					t.Errorf("me.id = %q, want alice", data.Me.ID)
				}
			},
		},
		{
			name: "GET variables that are not JSON are 400",
			req:  request{Method: http.MethodGet, Path: "/graphql?query=%7B__typename%7D&variables=%7Bnope", Token: alice},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusBadRequest, "")
			},
		},
		{
			name: "a form-encoded POST is 415",
			req:  request{ContentType: "application/x-www-form-urlencoded", Token: alice, Body: strings.NewReader("query=%7B+me+%7B+id+%7D+%7D")},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnsupportedMediaType, "")
			},
		},
		{
			name: "a multipart POST is 415",
			req: request{ContentType: "multipart/form-data; boundary=X", Token: alice, Body: strings.NewReader(
				"--X\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{\"query\":\"{ me { id } }\"}\r\n--X--\r\n")},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnsupportedMediaType, "")
			},
		},
		{
			name: "a text/plain POST is 415 even with a JSON body",
			req:  request{ContentType: "text/plain", Token: alice, Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnsupportedMediaType, "")
			},
		},
		{
			name: "a JSON POST with a charset parameter is served",
			req:  request{ContentType: "application/json; charset=utf-8", Token: alice, Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustOK(t, nil)
			},
		},
		{
			name: "PUT is 405 naming GET and POST in Allow",
			req:  request{Method: http.MethodPut, ContentType: mediaJSON, Token: alice, Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusMethodNotAllowed, "")
				wantAllow(t, r, "GET", "POST")
			},
		},
		{
			name: "DELETE is 405 naming GET and POST in Allow",
			req:  request{Method: http.MethodDelete, Token: alice},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusMethodNotAllowed, "")
				wantAllow(t, r, "GET", "POST")
			},
		},
		{
			name: "a token that fails verification is 401 UNAUTHENTICATED with WWW-Authenticate",
			req:  request{Token: "not.a.jwt", Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
				wantBearerChallenge(t, r)
			},
		},
		{
			name: "an expired token is 401",
			req: request{Token: mint(t, "alice", func(c *auth.MintClaims) { c.TTL = -time.Hour }),
				Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
				wantBearerChallenge(t, r)
			},
		},
		{
			name: "a token signed with another secret is 401",
			req:  request{Token: mintWith(t, []byte("another-secret-of-more-than-32-bytes!!"), "alice"), Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
			},
		},
		{
			name: "a bad token is 401 even for introspection, in the accepted media type",
			req:  request{Token: "garbage", Accept: mediaGraphQLResponse, Body: jsonBody(`{"query":"{ __schema { queryType { name } } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
				wantMedia(t, r, mediaGraphQLResponse)
			},
		},
		{
			name: "a bad token on GET is 401",
			req:  request{Method: http.MethodGet, Path: "/graphql?query=%7B__typename%7D", Token: "garbage"},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
			},
		},
		{
			name: "Authorization: Basic is 401",
			req:  request{Header: http.Header{"Authorization": {"Basic x"}}, Body: jsonBody(`{"query":"{ __typename }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
				wantBearerChallenge(t, r)
			},
		},
		{
			name: "Authorization: Bearer without a token is 401",
			req:  request{Header: http.Header{"Authorization": {"Bearer "}}, Body: jsonBody(`{"query":"{ __typename }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
			},
		},
		{
			name: "the bearer scheme is case-insensitive",
			req:  request{Header: http.Header{"Authorization": {"bearer " + alice}}, Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				r.mustOK(t, nil)
			},
		},
		{
			name: "no token on an @auth field is 200 with UNAUTHENTICATED",
			req:  request{Body: jsonBody(`{"query":"{ me { id } }"}`)},
			check: func(t *testing.T, r *response) {
				if r.Status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", r.Status, r.Body)
				}
				e := r.mustError(t, api.CodeUnauthenticated)
				if len(e.Path) != 1 || e.Path[0] != "me" {
					t.Errorf("error path = %v, want [me]", e.Path)
				}
				if string(r.Data) != "null" {
					t.Errorf("data = %s, want null (me is non-null)", r.Data)
				}
			},
		},
		{
			name: "no token may introspect",
			req:  request{Body: jsonBody(`{"query":"{ __schema { queryType { name } } }"}`)},
			check: func(t *testing.T, r *response) {
				var data struct {
					Schema struct{ QueryType struct{ Name string } } `json:"__schema"`
				}
				r.mustOK(t, &data)
				if data.Schema.QueryType.Name != "Query" {
					t.Errorf("queryType.name = %q, want Query", data.Schema.QueryType.Name)
				}
			},
		},
		{
			name: "no token may run the standard introspection query",
			req:  request{Body: jsonBody(mustJSON(t, map[string]any{"query": introspectionQuery, "operationName": "IntrospectionQuery"}))},
			check: func(t *testing.T, r *response) {
				var data struct {
					Schema struct {
						Types      []struct{ Name string }
						Directives []struct{ Name string }
					} `json:"__schema"`
				}
				r.mustOK(t, &data)
				var names []string
				for _, ty := range data.Schema.Types {
					names = append(names, ty.Name)
				}
				for _, want := range []string{"Task", "TaskConnection", "TaskStats", "User", "Time"} {
					if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
						t.Errorf("introspection lacks type %s; has %v", want, names)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.check(t, srv.do(t, tt.req))
		})
	}
}

// TestMutationOverGETIsRefusedAndChangesNothing checks CONTRACT §3: GET
// serves queries only, so that a link or an image cannot change data.
func TestMutationOverGETIsRefusedAndChangesNothing(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, d testutil.Dialect) {
		srv := newServer(t, d)
		alice := mint(t, "alice")
		existing := srv.createTask(t, alice, "keep me", true)

		for _, mutation := range []string{
			`mutation { createTask(input: {title: "via GET"}) { id } }`,
			`mutation { deleteTask(id: "` + existing.ID + `") { id } }`,
			`mutation { deleteCompletedTasks }`,
			`mutation { toggleTask(id: "` + existing.ID + `") { id } }`,
		} {
			r := srv.get(t, alice, mutation, nil)
			r.mustBeRequestError(t, http.StatusMethodNotAllowed, "")
			if got := r.Header.Get("Allow"); got != "POST" {
				t.Errorf("%s: Allow = %q, want POST", mutation, got)
			}
		}
		if n := srv.taskCount(t); n != 1 {
			t.Fatalf("after refused GET mutations the database holds %d tasks, want 1", n)
		}
		var data struct{ Task task }
		srv.gql(t, alice, `query($id: ID!) { task(id: $id) { `+taskFields+` } }`, map[string]any{"id": existing.ID}).mustOK(t, &data)
		if !equalTask(data.Task, existing) {
			t.Errorf("task changed by refused GET mutations: %+v, was %+v", data.Task, existing)
		}
	})
}

// TestOversizedBodyIs413 covers a body announced too large by its
// Content-Length and one sent chunked, whose size is only known by reading.
func TestOversizedBodyIs413(t *testing.T) {
	t.Parallel()
	const max = 1024
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.MaxBodyBytes = max })
	alice := mint(t, "alice")
	big := `{"query":"{ me { id } }","variables":{"pad":"` + strings.Repeat("x", 4*max) + `"}}`
	small := `{"query":"{ me { id } }","variables":{"pad":"` + strings.Repeat("x", max/2) + `"}}`

	tests := []struct {
		name   string
		body   func() io.Reader
		status int
	}{
		// bytes.Reader gives the request a Content-Length.
		{"with Content-Length", func() io.Reader { return bytes.NewReader([]byte(big)) }, http.StatusRequestEntityTooLarge},
		// An opaque reader makes the client send it chunked.
		{"chunked", func() io.Reader { return io.MultiReader(strings.NewReader(big)) }, http.StatusRequestEntityTooLarge},
		{"under the limit chunked", func() io.Reader { return io.MultiReader(strings.NewReader(small)) }, http.StatusOK},
		{"under the limit with Content-Length", func() io.Reader { return strings.NewReader(small) }, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := srv.do(t, request{Token: alice, Body: tt.body()})
			if tt.status == http.StatusOK {
				r.mustOK(t, nil)
				return
			}
			r.mustBeRequestError(t, tt.status, "")
		})
	}
}

// TestRequestErrorsHaveNoDataEntry pins the GraphQL-over-HTTP rule that a
// request refused before execution has no "data" key at all (not even
// null), while an executed operation whose root is null keeps "data": null.
func TestRequestErrorsHaveNoDataEntry(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.MaxBodyBytes = 64 })
	for _, tt := range []struct {
		name string
		req  request
	}{
		{"401", request{Token: "bad", Body: jsonBody(`{"query":"{ __typename }"}`)}},
		{"405", request{Method: http.MethodPatch}},
		{"413", request{Body: jsonBody(`{"query":"{ __typename }","variables":{"x":"` + strings.Repeat("y", 100) + `"}}`)}},
		{"415", request{ContentType: "text/plain", Body: jsonBody(`{}`)}},
		{"400 body", request{Body: jsonBody(`nope`)}},
		{"400 parse", request{Body: jsonBody(`{"query":"{"}`)}},
		{"200 validation", request{Body: jsonBody(`{"query":"{ x }"}`)}},
		{"400 no query", request{Body: jsonBody(`{"qeury":"{ x }"}`)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := srv.do(t, tt.req)
			if bytes.Contains(r.Body, []byte(`"data"`)) {
				t.Errorf("status %d: body has a data key: %s", r.Status, r.Body)
			}
			if len(r.Errors) == 0 {
				t.Errorf("status %d: no errors: %s", r.Status, r.Body)
			}
		})
	}
	t.Run("executed with a null root keeps data null", func(t *testing.T) {
		r := srv.do(t, request{Body: jsonBody(`{"query":"{ me { id } }"}`)})
		if !bytes.Contains(r.Body, []byte(`"data":null`)) {
			t.Errorf("want \"data\":null in %s", r.Body)
		}
	})
}

// TestPersistedQueries checks Apollo's automatic persisted queries over
// POST and GET (CONTRACT §6, §7).
func TestPersistedQueries(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	const query = `{ me { id } }`
	wrongHash := strings.Repeat("0", 64)
	ext := func(h string) map[string]any {
		return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": h}}
	}

	r := srv.do(t, request{Token: alice, Body: jsonBody(mustJSON(t, map[string]any{"extensions": ext(sha256Hex(query))}))})
	if r.Status != http.StatusOK {
		t.Fatalf("unknown hash: status %d, want 200 (Apollo retries with the document): %s", r.Status, r.Body)
	}
	r.mustError(t, "PERSISTED_QUERY_NOT_FOUND")

	// Under the newer media type a response without data is never 2xx.
	r = srv.do(t, request{Token: alice, Accept: mediaGraphQLResponse, Body: jsonBody(mustJSON(t, map[string]any{"extensions": ext(sha256Hex(query))}))})
	r.mustBeRequestError(t, http.StatusBadRequest, "PERSISTED_QUERY_NOT_FOUND")

	r = srv.do(t, request{Token: alice, Body: jsonBody(mustJSON(t, map[string]any{"query": query, "extensions": ext(wrongHash)}))})
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Message, "hash") {
		t.Fatalf("a hash that does not match its document must be refused, got %d: %s", r.Status, r.Body)
	}

	srv.do(t, request{Token: alice, Body: jsonBody(mustJSON(t, map[string]any{"query": query, "extensions": ext(sha256Hex(query))}))}).mustOK(t, nil)
	r = srv.do(t, request{Method: http.MethodGet, Token: alice,
		Path: "/graphql?extensions=" + urlEscape(mustJSON(t, ext(sha256Hex(query))))})
	var data struct{ Me struct{ ID string } }
	r.mustOK(t, &data)
	if data.Me.ID != "alice" {
		t.Errorf("persisted query over GET: me.id = %q, want alice", data.Me.ID)
	}
}

func wantMedia(t *testing.T, r *response, media string) {
	t.Helper()
	ct := r.Header.Get("Content-Type")
	got, _, _ := strings.Cut(ct, ";")
	if strings.TrimSpace(got) != media {
		t.Errorf("Content-Type = %q, want %s", ct, media)
	}
}

func wantAllow(t *testing.T, r *response, methods ...string) {
	t.Helper()
	allow := r.Header.Get("Allow")
	for _, m := range methods {
		if !strings.Contains(allow, m) {
			t.Errorf("Allow = %q, want it to name %s", allow, m)
		}
	}
}

func wantBearerChallenge(t *testing.T, r *response) {
	t.Helper()
	if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
	}
}

// TestBodiesThatAreNotGraphQLRequestsAre400 pins CONTRACT §3 and the
// GraphQL-over-HTTP spec: a body that is not a GraphQL request at all is
// 400 under either media type, and so is a parameter of the wrong type;
// null stands for an absent optional parameter, and the hash of a
// persisted query stands for the query.
func TestBodiesThatAreNotGraphQLRequestsAre400(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{name: "an empty body", body: ``},
		{name: "a body that is not JSON", body: `{ "not a JSON`},
		{name: "null", body: `null`},
		{name: "a string", body: `"{ __typename }"`},
		{name: "a batch", body: `[{"query":"{ __typename }"}]`},
		{name: "an object without query", body: `{"qeury":"{ __typename }"}`},
		{name: "a null query", body: `{"query":null}`},
		{name: "an empty query", body: `{"query":""}`},
		{name: "an object query", body: `{"query":{"obj":"ect"}}`},
		{name: "a number query", body: `{"query":0}`},
		{name: "a boolean query", body: `{"query":false}`},
		{name: "an array query", body: `{"query":["{ __typename }"]}`},
		{name: "an object operationName", body: `{"query":"{ __typename }","operationName":{"obj":"ect"}}`},
		{name: "a number operationName", body: `{"query":"{ __typename }","operationName":0}`},
		{name: "a boolean operationName", body: `{"query":"{ __typename }","operationName":false}`},
		{name: "an array operationName", body: `{"query":"{ __typename }","operationName":["a"]}`},
		{name: "string variables", body: `{"query":"{ __typename }","variables":"string"}`},
		{name: "number variables", body: `{"query":"{ __typename }","variables":0}`},
		{name: "boolean variables", body: `{"query":"{ __typename }","variables":false}`},
		{name: "array variables", body: `{"query":"{ __typename }","variables":["array"]}`},
		{name: "string extensions", body: `{"query":"{ __typename }","extensions":"string"}`},
		{name: "number extensions", body: `{"query":"{ __typename }","extensions":0}`},
		{name: "boolean extensions", body: `{"query":"{ __typename }","extensions":false}`},
		{name: "array extensions", body: `{"query":"{ __typename }","extensions":["array"]}`},
		{name: "null variables, operationName and extensions are absent ones", body: `{"query":"{ __typename }","variables":null,"operationName":null,"extensions":null}`, ok: true},
		{name: "extensions this server does not know are ignored", body: `{"query":"{ __typename }","extensions":{"some":"value"}}`, ok: true},
	}
	for _, tt := range tests {
		for _, media := range []string{mediaJSON, mediaGraphQLResponse} {
			t.Run(tt.name+" as "+media, func(t *testing.T) {
				t.Parallel()
				r := srv.do(t, request{Accept: media, Body: jsonBody(tt.body)})
				wantMedia(t, r, media)
				if tt.ok {
					r.mustOK(t, nil)
					return
				}
				r.mustBeRequestError(t, http.StatusBadRequest, "")
				if tt.body != "" && strings.Contains(string(r.Body), tt.body) {
					t.Errorf("the error echoes the body: %s", r.Body)
				}
			})
		}
	}
	t.Run("a GET without query is 400", func(t *testing.T) {
		t.Parallel()
		srv.do(t, request{Method: http.MethodGet, Path: "/graphql?operationName=A"}).mustBeRequestError(t, http.StatusBadRequest, "")
	})
	t.Run("a GET whose variables are not an object is 400", func(t *testing.T) {
		t.Parallel()
		srv.do(t, request{Method: http.MethodGet, Path: "/graphql?query=%7B__typename%7D&variables=%5B1%5D"}).mustBeRequestError(t, http.StatusBadRequest, "")
	})
}

// TestDocumentsThatCannotRunFollowTheResponseMediaType pins statusFor
// through the server: a well-formed request whose document fails to parse,
// to validate, to coerce its variables or to stay within the limits, or
// whose persisted query is unknown, is 200 with errors for clients that
// accept only application/json and 400 under
// application/graphql-response+json; either way it has no data entry.
func TestDocumentsThatCannotRunFollowTheResponseMediaType(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Limits.MaxDepth = 3 })
	tests := []struct {
		name, body, code string
	}{
		{"a parse failure", `{"query":"{"}`, "GRAPHQL_PARSE_FAILED"},
		{"a validation failure", `{"query":"{ nope }"}`, "GRAPHQL_VALIDATION_FAILED"},
		{"an unknown operationName", `{"query":"query A { __typename }","operationName":"B"}`, "GRAPHQL_VALIDATION_FAILED"},
		{"a variable coercion failure", `{"query":"query CoerceFailure($id: ID!) { __typename }","variables":{"id":null}}`, "GRAPHQL_VALIDATION_FAILED"},
		{"a document over a limit", `{"query":"{ __schema { types { fields { name } } } }"}`, api.CodeComplexityLimitExceeded},
		{"an unknown persisted query", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + sha256Hex("{ __typename }") + `"}}}`, "PERSISTED_QUERY_NOT_FOUND"},
	}
	for _, tt := range tests {
		for media, status := range map[string]int{mediaJSON: http.StatusOK, mediaGraphQLResponse: http.StatusBadRequest} {
			t.Run(tt.name+" as "+media, func(t *testing.T) {
				t.Parallel()
				r := srv.do(t, request{Accept: media, Body: jsonBody(tt.body)})
				r.mustBeRequestError(t, status, tt.code)
				wantMedia(t, r, media)
			})
		}
	}
}

// TestSubscriptionsAreRefusedOverHTTP pins that subscriptions run over the
// websocket only, where token expiry and the per-user caps hold: over HTTP
// they are a 400 that names the websocket, whatever the client accepts
// (gqlgen's multipart transport used to stream them without end).
func TestSubscriptionsAreRefusedOverHTTP(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	const sub = `subscription { taskChanged { kind task { id } } }`
	body := mustJSON(t, map[string]any{"query": sub})
	tests := []struct {
		name string
		req  request
	}{
		{"POST accepting multipart/mixed (Apollo's multipart subscriptions)", request{Token: alice, Accept: `multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json`, Body: jsonBody(body)}},
		{"POST accepting multipart/mixed for @defer", request{Token: alice, Accept: "multipart/mixed;deferSpec=20220824, application/json", Body: jsonBody(body)}},
		{"POST accepting application/json", request{Token: alice, Body: jsonBody(body)}},
		{"POST accepting graphql-response+json", request{Token: alice, Accept: mediaGraphQLResponse, Body: jsonBody(body)}},
		{"GET", request{Method: http.MethodGet, Token: alice, Path: "/graphql?query=" + urlEscape(sub)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := srv.do(t, tt.req)
			r.mustBeRequestError(t, http.StatusBadRequest, "")
			if !strings.Contains(strings.ToLower(r.Errors[0].Message), "websocket") {
				t.Errorf("the error does not name the websocket: %s", r.Body)
			}
		})
	}
}

// TestMultipartClientsGetEveryHTTPRule pins that a client accepting
// multipart/mixed goes through the same rules as any other: a body that
// is not one JSON object is 400 without the body in the answer or the log,
// a query without @defer is one JSON answer, and so on.
func TestMultipartClientsGetEveryHTTPRule(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	const accept = "multipart/mixed;deferSpec=20220824, application/json"
	const marker = "d0cafe5ecre7"

	t.Run("a JSON array body is 400 and neither the answer nor the log holds it", func(t *testing.T) {
		body := `[{"query":"{ __typename }","variables":{"x":"` + marker + `"}}]`
		r := srv.do(t, request{Token: alice, Accept: accept, Body: jsonBody(body)})
		r.mustBeRequestError(t, http.StatusBadRequest, "")
		for where, text := range map[string]string{"answer": string(r.Body), "log": srv.Log.String()} {
			if strings.Contains(text, marker) || strings.Contains(text, "RawParams") {
				t.Errorf("the %s holds the body or graphql.RawParams: %s", where, text)
			}
		}
	})
	t.Run("a query without @defer is one JSON answer", func(t *testing.T) {
		r := srv.do(t, request{Token: alice, Accept: accept, Body: jsonBody(`{"query":"{ me { id } }"}`)})
		r.mustOK(t, nil)
		wantMedia(t, r, mediaJSON)
	})
	t.Run("a parse failure is 200 with errors", func(t *testing.T) {
		srv.do(t, request{Token: alice, Accept: accept, Body: jsonBody(`{"query":"{"}`)}).mustBeRequestError(t, http.StatusOK, "GRAPHQL_PARSE_FAILED")
	})
	t.Run("a token that fails verification is 401", func(t *testing.T) {
		srv.do(t, request{Token: "garbage", Accept: accept, Body: jsonBody(`{"query":"{ me { id ... @defer { email } } }"}`)}).
			mustBeRequestError(t, http.StatusUnauthorized, api.CodeUnauthenticated)
	})
}
