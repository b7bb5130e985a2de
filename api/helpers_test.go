package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/uptrace/bun"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// testSecret is the HS256 secret the test servers verify tokens with; it is
// longer than the 32 bytes auth requires.
var testSecret = []byte("api-tests-hs256-secret-0123456789abcdef")

// timeFormat is how every Time must look: UTC, six fractional digits, Z.
var timeFormat = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// testServer is the real handler of api.New in front of a fresh database,
// served over a real listener, with its log captured.
type testServer struct {
	*httptest.Server
	// Handler is the handler under test, for tests that use a
	// ResponseRecorder instead of the network.
	Handler http.Handler
	DB      *bun.DB
	Log     *logBuffer
}

// newServer starts api.New on a fresh database of dialect d. configure, if
// given, adjusts the configuration before the handler is built.
func newServer(t *testing.T, d testutil.Dialect, configure ...func(*api.Config)) *testServer {
	t.Helper()
	db := testutil.NewDB(t, d)
	return newServerWith(t, db, model.NewTasks(db), configure...)
}

// newServerWith starts api.New with the given store (which may be nil, to
// make resolvers panic), db being the database behind it, if any.
func newServerWith(t *testing.T, db *bun.DB, tasks *model.Tasks, configure ...func(*api.Config)) *testServer {
	t.Helper()
	verifier, err := auth.New(context.Background(), auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	logs := &logBuffer{}
	cfg := api.Config{
		Tasks:              tasks,
		Verifier:           verifier,
		Logger:             slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		CORSAllowedOrigins: []string{"http://localhost:3000"},
	}
	for _, c := range configure {
		c(&cfg)
	}
	h := api.New(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, Handler: h, DB: db, Log: logs}
}

// mint returns a token for user sub signed with testSecret. Options may set
// further claims.
func mint(t testing.TB, sub string, opts ...func(*auth.MintClaims)) string {
	t.Helper()
	c := auth.MintClaims{Subject: sub}
	for _, o := range opts {
		o(&c)
	}
	tok, err := auth.Mint(testSecret, c)
	if err != nil {
		t.Fatalf("mint token for %q: %v", sub, err)
	}
	return tok
}

// gqlError is one entry of a response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is extensions.code, or "" when absent.
func (e gqlError) Code() string {
	s, _ := e.Extensions["code"].(string)
	return s
}

// response is what the server answered, with the GraphQL body decoded.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	// Data is the raw data entry; nil when the body has no data key at
	// all (a request error), "null" when it is null.
	Data       json.RawMessage
	Errors     []gqlError
	Extensions map[string]any
}

// HasData reports whether the body had a data key at all.
func (r *response) HasData() bool { return r.Data != nil }

// decode decodes data into v, failing the test when it cannot.
func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// mustOK fails the test unless the response is a 200 with data and no
// errors, and decodes data into v when v is not nil.
func (r *response) mustOK(t testing.TB, v any) {
	t.Helper()
	if r.Status != http.StatusOK || len(r.Errors) > 0 || !r.HasData() {
		t.Fatalf("want 200 with data and no errors, got %d: %s", r.Status, r.Body)
	}
	if v != nil {
		r.decode(t, v)
	}
}

// mustError fails the test unless the response holds exactly one error,
// with the code given, and returns it.
func (r *response) mustError(t testing.TB, code string) gqlError {
	t.Helper()
	if len(r.Errors) != 1 {
		t.Fatalf("want exactly one error with code %s, got %d: %s", code, len(r.Errors), r.Body)
	}
	if got := r.Errors[0].Code(); got != code {
		t.Fatalf("want error code %s, got %q: %s", code, got, r.Body)
	}
	return r.Errors[0]
}

// mustBeRequestError fails the test unless the response is a request error
// of GraphQL over HTTP: the status given, errors with the code given ("" for
// none in particular) and no data entry at all.
func (r *response) mustBeRequestError(t testing.TB, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want status %d, got %d: %s", status, r.Status, r.Body)
	}
	if len(r.Errors) == 0 {
		t.Fatalf("want errors, got none: %s", r.Body)
	}
	if code != "" && r.Errors[0].Code() != code {
		t.Fatalf("want error code %s, got %q: %s", code, r.Errors[0].Code(), r.Body)
	}
	if r.HasData() {
		t.Fatalf("a request error must have no data entry, got %s", r.Body)
	}
}

// request is an HTTP request to the server under test, built up by the
// tests; the zero value is a POST of an empty JSON object.
type request struct {
	Method      string
	Path        string // default "/graphql"
	ContentType string // default "application/json" for POST
	Accept      string
	Token       string // sent as Authorization: Bearer
	Host        string // sent as the Host header; default the server's address
	Header      http.Header
	Body        io.Reader
}

// gql posts a document with variables as the user of token ("" for none).
func (s *testServer) gql(t testing.TB, token, query string, vars map[string]any) *response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatalf("encode request: %v", err)
	}
	return s.do(t, request{Token: token, Body: bytes.NewReader(body)})
}

// get sends a document over GET, as urql does for queries.
func (s *testServer) get(t testing.TB, token, query string, vars map[string]any) *response {
	t.Helper()
	q := url.Values{"query": {query}}
	if vars != nil {
		b, err := json.Marshal(vars)
		if err != nil {
			t.Fatalf("encode variables: %v", err)
		}
		q.Set("variables", string(b))
	}
	return s.do(t, request{Method: http.MethodGet, Path: "/graphql?" + q.Encode(), Token: token})
}

// do sends req over the network and decodes the answer.
func (s *testServer) do(t testing.TB, req request) *response {
	t.Helper()
	return roundTrip(t, s.Client(), s.URL, req)
}

// serve runs req through the handler with a ResponseRecorder.
func (s *testServer) serve(t testing.TB, req request) *response {
	t.Helper()
	r := req.build(t, "http://example.test")
	rec := httptest.NewRecorder()
	s.Handler.ServeHTTP(rec, r)
	return decodeResponse(t, rec.Code, rec.Header(), rec.Body.Bytes())
}

func (req request) build(t testing.TB, base string) *http.Request {
	t.Helper()
	if req.Method == "" {
		req.Method = http.MethodPost
	}
	if req.Path == "" {
		req.Path = "/graphql"
	}
	if req.Body == nil && req.Method == http.MethodPost {
		req.Body = strings.NewReader("{}")
	}
	r, err := http.NewRequest(req.Method, base+req.Path, req.Body)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	for k, vs := range req.Header {
		r.Header[k] = vs
	}
	if req.ContentType == "" && req.Method == http.MethodPost && r.Header.Get("Content-Type") == "" {
		req.ContentType = "application/json"
	}
	if req.ContentType != "" {
		r.Header.Set("Content-Type", req.ContentType)
	}
	if req.Accept != "" {
		r.Header.Set("Accept", req.Accept)
	}
	if req.Token != "" {
		r.Header.Set("Authorization", "Bearer "+req.Token)
	}
	if req.Host != "" {
		r.Host = req.Host
	}
	return r
}

func roundTrip(t testing.TB, c *http.Client, base string, req request) *response {
	t.Helper()
	res, err := c.Do(req.build(t, base))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return decodeResponse(t, res.StatusCode, res.Header, body)
}

// decodeResponse decodes a GraphQL body when the response is JSON; other
// bodies (health checks, the IDE) are left in Body.
func decodeResponse(t testing.TB, status int, h http.Header, body []byte) *response {
	t.Helper()
	r := &response{Status: status, Header: h, Body: body}
	if !strings.Contains(h.Get("Content-Type"), "json") {
		return r
	}
	var raw struct {
		Data       json.RawMessage `json:"data"`
		Errors     []gqlError      `json:"errors"`
		Extensions map[string]any  `json:"extensions"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("status %d: body is not GraphQL JSON: %v: %s", status, err, body)
	}
	r.Data, r.Errors, r.Extensions = raw.Data, raw.Errors, raw.Extensions
	return r
}

// logBuffer collects a JSON log written from the server's goroutines.
type logBuffer struct{ testutil.SyncBuffer }

// Entries returns the log's records whose attribute key has value.
func (b *logBuffer) Entries(t testing.TB, key, value string) []map[string]any {
	t.Helper()
	var found []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if e[key] == value {
			found = append(found, e)
		}
	}
	return found
}

// task is a Task as the API returns it.
type task struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Description *string `json:"description"`
	Completed   bool    `json:"completed"`
	CreatedAt   string  `json:"createdAt"`
	UpdatedAt   string  `json:"updatedAt"`
}

// taskFields selects every field of Task.
const taskFields = `id title description completed createdAt updatedAt`

// createTask creates a task for the user of token and returns it.
func (s *testServer) createTask(t testing.TB, token, title string, completed bool) task {
	t.Helper()
	var data struct{ CreateTask task }
	s.gql(t, token, `mutation($in: CreateTaskInput!) { createTask(input: $in) { `+taskFields+` } }`,
		map[string]any{"in": map[string]any{"title": title, "completed": completed}}).mustOK(t, &data)
	return data.CreateTask
}

// taskCount counts every task in the database, of all users, bypassing the
// API: for checking that a refused request changed nothing.
func (s *testServer) taskCount(t testing.TB) int {
	t.Helper()
	n, err := s.DB.NewSelect().Model((*model.Task)(nil)).Count(context.Background())
	if err != nil {
		t.Fatalf("count tasks: %v", err)
	}
	return int(n)
}

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func fmtPtr(s *string) string {
	if s == nil {
		return "null"
	}
	return "\"" + *s + "\""
}

func equalTask(a, b task) bool {
	return a.ID == b.ID && a.Title == b.Title && equalPtr(a.Description, b.Description) &&
		a.Completed == b.Completed && a.CreatedAt == b.CreatedAt && a.UpdatedAt == b.UpdatedAt
}

// mintWith mints a token with a secret other than testSecret.
func mintWith(t testing.TB, secret []byte, sub string) string {
	t.Helper()
	tok, err := auth.Mint(secret, auth.MintClaims{Subject: sub})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode JSON: %v", err)
	}
	return string(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func urlEscape(s string) string { return url.QueryEscape(s) }

// introspectionQuery is the query GraphiQL, Apollo and graphql-codegen send
// (graphql-js getIntrospectionQuery with its default options).
const introspectionQuery = `
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name
      description
      locations
      args { ...InputValue }
    }
  }
}

fragment FullType on __Type {
  kind
  name
  description
  fields(includeDeprecated: true) {
    name
    description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}

fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
}

fragment TypeRef on __Type {
  kind
  name
  ofType {
    kind
    name
    ofType {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
              }
            }
          }
        }
      }
    }
  }
}
`

// queryCounter is a bun query hook that counts the queries a database
// runs, for proving a refused request never reached it.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *queryCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// countQueries starts counting the queries of srv's database.
func (s *testServer) countQueries() *queryCounter {
	c := &queryCounter{}
	s.DB.AddQueryHook(c)
	return c
}
