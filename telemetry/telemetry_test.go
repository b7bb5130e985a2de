package telemetry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskql/server/api"
	"github.com/taskql/server/auth"
	"github.com/taskql/server/database"
	"github.com/taskql/server/model"
	"github.com/taskql/server/telemetry"
	"github.com/taskql/server/testutil"
	"github.com/taskql/server/testutil/gqlws"
)

var secret = []byte("telemetry-tests-hs256-secret-0123456789")

// The client's span, as a W3C traceparent: its trace id is what every
// span of the request must carry.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	traceparent   = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// tracedServer is api.New on a fresh database, with its spans, SQL's
// included, recorded by the SDK's in-memory exporter.
type tracedServer struct {
	handler http.Handler
	spans   *tracetest.InMemoryExporter
	token   string
}

// newTracedServer builds the server; tracing says whether api.New gets
// the tracer provider (the database's tracer always does).
func newTracedServer(t *testing.T, d testutil.Dialect, tracing bool) *tracedServer {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, database.Config{URL: testutil.URL(t, d), Tracer: telemetry.NewSQLTracer(tp)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := model.CreateSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.New(context.Background(), auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tasks := model.NewTasks(db)
	cfg := api.Config{
		Tasks:    tasks,
		Verifier: verifier,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Changes:  testutil.NewBus(t, db, tasks),
	}
	if tracing {
		cfg.TracerProvider = tp
	}
	token, err := auth.Mint(secret, auth.MintClaims{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return &tracedServer{handler: api.New(cfg), spans: spans, token: token}
}

// post sends one GraphQL request, as a client in the middle of its own
// trace, and returns the decoded answer; the spans of earlier requests are
// forgotten first.
func (s *tracedServer) post(t *testing.T, requestID, query string) map[string]any {
	t.Helper()
	s.spans.Reset()
	body, _ := json.Marshal(map[string]any{"query": query})
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("X-Request-Id", requestID)
	req.Header.Set("traceparent", traceparent)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	var answer map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("answer %d %q: %v", rec.Code, rec.Body, err)
	}
	return answer
}

// spanTree indexes a request's spans.
type spanTree struct {
	spans []tracetest.SpanStub
}

func (tr spanTree) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tr.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func (tr spanTree) one(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	found := tr.named(name)
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans: %s", len(found), name, tr)
	}
	return found[0]
}

func (tr spanTree) children(parent tracetest.SpanStub) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range tr.spans {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() {
			out = append(out, s)
		}
	}
	return out
}

func (tr spanTree) String() string {
	var names []string
	for _, s := range tr.spans {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// dump writes the tree below the spans without a parent in it, one span
// a line with its attributes, for the test's log.
func (tr spanTree) dump() string {
	var b strings.Builder
	var walk func(s tracetest.SpanStub, depth int)
	walk = func(s tracetest.SpanStub, depth int) {
		fmt.Fprintf(&b, "%s%s [%s]", strings.Repeat("  ", depth), s.Name, s.SpanKind)
		for _, kv := range s.Attributes {
			fmt.Fprintf(&b, " %s=%v", kv.Key, kv.Value.Emit())
		}
		b.WriteString("\n")
		for _, c := range tr.children(s) {
			walk(c, depth+1)
		}
	}
	for _, s := range tr.spans {
		if !slices.ContainsFunc(tr.spans, func(p tracetest.SpanStub) bool { return p.SpanContext.SpanID() == s.Parent.SpanID() }) {
			walk(s, 0)
		}
	}
	return b.String()
}

func attr(s tracetest.SpanStub, key string) (any, bool) {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.AsInterface(), true
		}
	}
	return nil, false
}

func wantAttr(t *testing.T, s tracetest.SpanStub, key string, want any) {
	t.Helper()
	got, ok := attr(s, key)
	if !ok {
		t.Errorf("span %q has no %s; attributes: %v", s.Name, key, s.Attributes)
		return
	}
	if gs, ok := got.([]string); ok {
		if ws, ok := want.([]string); ok && slices.Equal(gs, ws) {
			return
		}
	} else if got == want {
		return
	}
	t.Errorf("span %q: %s = %v, want %v", s.Name, key, got, want)
}

func wantParent(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() {
		t.Errorf("span %q has parent %s, want %q (%s)", child.Name, child.Parent.SpanID(), parent.Name, parent.SpanContext.SpanID())
	}
}

// TestOneRequestIsOneSpanTree pins the tree of a request: the HTTP span,
// a child of the client's span in the client's trace; the operation's
// below it, with its name, type and cost; a span per root field below
// that; and the SQL statements below the root field that ran them, as
// templates without the user's values. Every span has the request id.
func TestOneRequestIsOneSpanTree(t *testing.T) {
	srv := newTracedServer(t, testutil.Postgres, true)
	srv.post(t, "seed", `mutation { createTask(input: {title: "secret plans"}) { id } }`)

	answer := srv.post(t, "req-tree-1", `query MyTasks { tasks(first: 5) { totalCount nodes { title } } taskStats { total } }`)
	if answer["errors"] != nil {
		t.Fatalf("answer: %v", answer)
	}
	tree := spanTree{spans: srv.spans.GetSpans()}
	t.Logf("the spans of one request:\n%s", tree.dump())

	httpSpan := tree.one(t, "POST /graphql")
	if got := httpSpan.SpanContext.TraceID().String(); got != clientTraceID {
		t.Errorf("trace id %s, want the client's %s", got, clientTraceID)
	}
	if got := httpSpan.Parent.SpanID().String(); got != clientSpanID || !httpSpan.Parent.IsRemote() {
		t.Errorf("HTTP span's parent %s (remote %v), want the client's span %s", got, httpSpan.Parent.IsRemote(), clientSpanID)
	}
	if httpSpan.SpanKind != trace.SpanKindServer {
		t.Errorf("HTTP span kind %v, want server", httpSpan.SpanKind)
	}
	wantAttr(t, httpSpan, "http.response.status_code", int64(200))

	op := tree.one(t, "query MyTasks")
	wantParent(t, op, httpSpan)
	wantAttr(t, op, "graphql.operation.name", "MyTasks")
	wantAttr(t, op, "graphql.operation.type", "query")
	cost := answer["extensions"].(map[string]any)["cost"].(map[string]any)["requested"].(float64)
	wantAttr(t, op, "graphql.operation.cost", int64(cost))
	if _, ok := attr(op, "graphql.error.codes"); ok {
		t.Errorf("a successful operation has error codes: %v", op.Attributes)
	}

	var sql []tracetest.SpanStub
	for _, name := range []string{"Query.tasks", "Query.taskStats"} {
		field := tree.one(t, name)
		wantParent(t, field, op)
		children := tree.children(field)
		if len(children) == 0 {
			t.Errorf("root field %s has no SQL span below it; spans: %s", name, tree)
		}
		sql = append(sql, children...)
	}
	if len(tree.children(op)) != 2 {
		t.Errorf("operation has %d children, want the 2 root fields; spans: %s", len(tree.children(op)), tree)
	}
	for _, s := range sql {
		if s.SpanKind != trace.SpanKindClient {
			t.Errorf("SQL span %q kind %v, want client", s.Name, s.SpanKind)
		}
		wantAttr(t, s, "db.system", "postgresql")
		if s.Name == "connect" {
			continue // the pool's first connection, opened for this request
		}
		stmt, _ := attr(s, "db.statement")
		text, _ := stmt.(string)
		if !strings.Contains(text, "SELECT") {
			t.Errorf("SQL span %q: db.statement %q is not the statement", s.Name, text)
		}
		if strings.Contains(text, "alice") {
			t.Errorf("SQL span %q: db.statement %q has the user's id in it, want a template", s.Name, text)
		}
	}

	// Four kinds of span, all of the one request, in the client's trace.
	if want := 1 + 1 + 2 + len(sql); len(tree.spans) != want {
		t.Errorf("%d spans, want %d: %s", len(tree.spans), want, tree)
	}
	for _, s := range tree.spans {
		wantAttr(t, s, "request.id", "req-tree-1")
		if s.SpanContext.TraceID().String() != clientTraceID {
			t.Errorf("span %q is in trace %s, want %s", s.Name, s.SpanContext.TraceID(), clientTraceID)
		}
	}
}

// TestFailedOperationsCarryTheirErrorCodes pins the error codes of an
// operation that ran and failed, on it and on its root field, and of one
// refused before it ran, which still has a span.
func TestFailedOperationsCarryTheirErrorCodes(t *testing.T) {
	srv := newTracedServer(t, testutil.SQLite, true)

	srv.post(t, "req-bad-input", `mutation Add { createTask(input: {title: ""}) { id } }`)
	tree := spanTree{spans: srv.spans.GetSpans()}
	op := tree.one(t, "mutation Add")
	wantAttr(t, op, "graphql.error.codes", []string{api.CodeBadUserInput})
	if op.Status.Code.String() != "Error" {
		t.Errorf("failed operation's status %v, want Error", op.Status)
	}
	field := tree.one(t, "Mutation.createTask")
	wantParent(t, field, op)
	wantAttr(t, field, "graphql.error.codes", []string{api.CodeBadUserInput})
	wantAttr(t, field, "request.id", "req-bad-input")

	srv.post(t, "req-invalid", `query Broken { nope }`)
	tree = spanTree{spans: srv.spans.GetSpans()}
	refused := tree.one(t, "GraphQL Operation")
	wantParent(t, refused, tree.one(t, "POST /graphql"))
	wantAttr(t, refused, "graphql.error.codes", []string{"GRAPHQL_VALIDATION_FAILED"})
	wantAttr(t, refused, "request.id", "req-invalid")
	if len(tree.spans) != 2 {
		t.Errorf("a refused operation made %d spans, want HTTP and operation: %s", len(tree.spans), tree)
	}
}

// TestNoTracerProviderMeansNoTracing pins what off means: api.New without
// a tracer provider registers no extension and wraps no handler, so the
// SQL spans (recorded here by a hook the test adds itself) have no
// request, operation or field span above them, and the client's trace is
// not continued; and Start gives no provider without an OTLP endpoint.
func TestNoTracerProviderMeansNoTracing(t *testing.T) {
	srv := newTracedServer(t, testutil.Postgres, false)
	srv.post(t, "req-off", `{ tasks(first: 5) { totalCount } }`)
	spans := srv.spans.GetSpans()
	if len(spans) == 0 {
		t.Fatal("the test's own SQL hook recorded nothing")
	}
	for _, s := range spans {
		if s.Parent.IsValid() || s.SpanContext.TraceID().String() == clientTraceID {
			t.Errorf("span %q has parent %s in trace %s: something traced the request", s.Name, s.Parent.SpanID(), s.SpanContext.TraceID())
		}
		if _, ok := attr(s, "request.id"); ok {
			t.Errorf("span %q has a request id: the request was traced", s.Name)
		}
	}

	for _, env := range []map[string]string{
		{},
		{"OTEL_SERVICE_NAME": "tasks", "OTEL_TRACES_SAMPLER": "always_on"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces", "OTEL_TRACES_EXPORTER": "none"},
	} {
		tp, shutdown, err := telemetry.Start(context.Background(), func(k string) string { return env[k] })
		if err != nil || tp != nil {
			t.Errorf("Start with %v = %v, %v; want no provider", env, tp, err)
		}
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("the shutdown of no provider: %v", err)
		}
	}
}

// TestStartRefusesWhatItCannotExport pins that settings which would
// silently export nothing stop the server at boot instead, naming the
// variable.
func TestStartRefusesWhatItCannotExport(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
		"OTEL_TRACES_EXPORTER":        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "zipkin"},
	} {
		_, _, err := telemetry.Start(context.Background(), func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Start with %v: %v, want an error naming %s", env, err, name)
		}
	}
}

// TestSubscriptionsRunTraced pins that a websocket still upgrades through
// the traced handler (its response writer wrapped by otelhttp) and that a
// subscription's span, a child of the upgrade's, ends when the client
// leaves, with the request id.
func TestSubscriptionsRunTraced(t *testing.T) {
	srv := newTracedServer(t, testutil.SQLite, true)
	web := httptest.NewServer(srv.handler)
	defer web.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, err := gqlws.Dial(ctx, web.URL+"/graphql", http.Header{"X-Request-Id": {"req-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Init(ctx, map[string]any{"Authorization": "Bearer " + srv.token}); err != nil {
		t.Fatal(err)
	}
	if err := ws.Subscribe(ctx, "1", `subscription Watch { taskChanged { kind task { title } } }`, nil); err != nil {
		t.Fatal(err)
	}
	// The subscription is in place once the server answers on the same
	// connection; a task created then is delivered.
	deadline := time.Now().Add(10 * time.Second)
	var msg gqlws.Message
	for msg.Type != "next" && time.Now().Before(deadline) {
		srv.post(t, "req-create", `mutation { createTask(input: {title: "watched"}) { id } }`)
		readCtx, stop := context.WithTimeout(ctx, 200*time.Millisecond)
		msg, _ = ws.Next(readCtx)
		stop()
	}
	if msg.Type != "next" {
		t.Fatalf("no event reached the traced subscription: %+v", msg)
	}
	ws.Close()

	// The subscription's span ends first, the upgrade's once its handler
	// has returned: wait for both.
	for time.Now().Before(deadline) {
		tree := spanTree{spans: srv.spans.GetSpans()}
		if sub := tree.named("subscription Watch"); len(sub) == 1 && len(tree.named("GET /graphql")) == 1 {
			wantParent(t, sub[0], tree.one(t, "GET /graphql"))
			wantAttr(t, sub[0], "request.id", "req-ws")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the subscription's or the upgrade's span never ended; spans: %s", spanTree{spans: srv.spans.GetSpans()})
}
