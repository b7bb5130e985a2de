package api_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// newMetricsServer starts a server that records metrics, with configure
// applied after.
func newMetricsServer(t *testing.T, configure ...func(*api.Config)) (*testServer, *api.Metrics) {
	t.Helper()
	db := testutil.NewDB(t, testutil.SQLite)
	m := api.NewMetrics(db.DB)
	srv := newServerWith(t, db, model.NewTasks(db), append([]func(*api.Config){func(c *api.Config) { c.Metrics = m }}, configure...)...)
	return srv, m
}

// scrape reads /metrics, failing the test unless it answers 200.
func (s *testServer) scrape(t *testing.T, token string) string {
	t.Helper()
	r := s.do(t, request{Method: http.MethodGet, Path: "/metrics", Token: token})
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", r.Status, r.Body)
	}
	return string(r.Body)
}

// metricValue returns the value of the series written exactly as series
// (name and sorted labels), or "" when /metrics does not have it.
func metricValue(body, series string) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	if m := re.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

func TestMetricsCountOperationsByNameAndCode(t *testing.T) {
	t.Parallel()
	srv, m := newMetricsServer(t)
	alice := mint(t, "alice")
	for range 2 {
		srv.gql(t, alice, `query MyTasks { tasks { nodes { id } } }`, nil).mustOK(t, nil)
	}
	srv.gql(t, alice, `mutation Add { createTask(input: {title: "t"}) { id } }`, nil).mustOK(t, nil)
	srv.gql(t, alice, `mutation Add { createTask(input: {title: ""}) { id } }`, nil).mustError(t, api.CodeBadUserInput)
	srv.gql(t, "", `query Anon { me { id } }`, nil).mustError(t, api.CodeUnauthenticated)
	srv.gql(t, alice, `{ nope }`, nil)
	srv.gql(t, alice, aliased(100, `tasks(first: 100) { nodes { id } }`), nil)
	m.SubscriptionStarted()
	m.SubscriptionStarted()
	m.SubscriptionEnded()

	body := srv.scrape(t, "")
	for series, want := range map[string]string{
		`taskql_graphql_operations_total{code="OK",operation="MyTasks",type="query"}`:                            "2",
		`taskql_graphql_operations_total{code="OK",operation="Add",type="mutation"}`:                             "1",
		`taskql_graphql_operations_total{code="BAD_USER_INPUT",operation="Add",type="mutation"}`:                 "1",
		`taskql_graphql_operations_total{code="UNAUTHENTICATED",operation="Anon",type="query"}`:                  "1",
		`taskql_graphql_operations_total{code="GRAPHQL_VALIDATION_FAILED",operation="anonymous",type="invalid"}`: "1",
		`taskql_graphql_operations_total{code="COMPLEXITY_LIMIT_EXCEEDED",operation="anonymous",type="query"}`:   "1",
		`taskql_graphql_operation_duration_seconds_count{operation="MyTasks",type="query"}`:                      "2",
		`taskql_http_responses_total{route="/graphql",status="200"}`:                                             "7",
		`taskql_active_subscriptions`:                 "1",
		`go_sql_max_open_connections{db_name="task"}`: "15",
	} {
		if got := metricValue(body, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
	if !strings.Contains(body, "go_goroutines ") {
		t.Error("no Go runtime metrics")
	}
}

// TestMetricsOperationNamesAreBounded keeps a client from growing the
// metrics without end by sending new operation names.
func TestMetricsOperationNamesAreBounded(t *testing.T) {
	t.Parallel()
	srv, _ := newMetricsServer(t)
	for i := range 150 {
		srv.gql(t, "", fmt.Sprintf(`query Op%d { __typename }`, i), nil).mustOK(t, nil)
	}
	body := srv.scrape(t, "")
	names := regexp.MustCompile(`taskql_graphql_operations_total\{[^}]*operation="([^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(names) > 101 {
		t.Errorf("%d operation names kept, want at most 100 plus other", len(names))
	}
	if got := metricValue(body, `taskql_graphql_operations_total{code="OK",operation="other",type="query"}`); got != "50" {
		t.Errorf("other = %q, want 50", got)
	}
}

func TestMetricsEndpointIsOffOrProtected(t *testing.T) {
	t.Parallel()
	t.Run("off without Metrics", func(t *testing.T) {
		srv := newServer(t, testutil.SQLite)
		if r := srv.do(t, request{Method: http.MethodGet, Path: "/metrics"}); r.Status != http.StatusNotFound {
			t.Errorf("GET /metrics = %d, want 404", r.Status)
		}
	})
	t.Run("a token is asked for when configured", func(t *testing.T) {
		const token = "metrics-token-0123456789"
		srv, _ := newMetricsServer(t, func(c *api.Config) { c.MetricsToken = token })
		for _, bad := range []string{"", "wrong-token-0123456789", token + "x", mint(t, "alice")} {
			r := srv.do(t, request{Method: http.MethodGet, Path: "/metrics", Token: bad})
			if r.Status != http.StatusUnauthorized || strings.Contains(string(r.Body), "taskql_") {
				t.Errorf("token %q: %d %.100s", bad, r.Status, r.Body)
			}
		}
		srv.scrape(t, token)
	})
}

// TestAccessLogNamesTheOperationAndItsErrorCodes checks the fields an
// operator searches the log by.
func TestAccessLogNamesTheOperationAndItsErrorCodes(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	r := srv.do(t, request{Token: alice, Header: http.Header{"X-Request-Id": {"op-log-1"}},
		Body: jsonBody(`{"query":"mutation Add { a: createTask(input: {title: \"\"}) { id } b: deleteTask(id: \"9\") { id } }"}`)})
	if r.Status != http.StatusOK {
		t.Fatalf("status %d", r.Status)
	}
	entries := srv.Log.Entries(t, "request_id", "op-log-1")
	var access map[string]any
	for _, e := range entries {
		if e["msg"] == "request" {
			access = e
		}
	}
	if access == nil {
		t.Fatalf("no access log line: %v", entries)
	}
	codes, _ := access["error_codes"].([]any)
	if access["operation"] != "Add" || access["operation_type"] != "mutation" || access["user_id"] != "alice" ||
		len(codes) != 2 || codes[0] != api.CodeBadUserInput || codes[1] != api.CodeNotFound {
		t.Errorf("access log = %v", access)
	}
	if _, ok := access["duration"]; !ok {
		t.Errorf("access log has no duration: %v", access)
	}
}
