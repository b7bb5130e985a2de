package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it accepts POST /v1/traces
// in protobuf, as a collector does, and keeps what it was sent.
type otlpReceiver struct {
	*httptest.Server
	mu        sync.Mutex
	resources []*tracepb.ResourceSpans
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &export)
		}
		if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("receiver: %s %q: %v", req.Header.Get("Content-Type"), body, err)
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.resources = append(r.resources, export.ResourceSpans...)
		r.mu.Unlock()
		answer, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(answer)
	}))
	t.Cleanup(r.Close)
	return r
}

// receivedSpan is a span as it arrived, with its resource's service name.
type receivedSpan struct {
	service string
	span    *tracepb.Span
}

func (r *otlpReceiver) spans() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, rs := range r.resources {
		service := stringAttr(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out = append(out, receivedSpan{service: service, span: s})
			}
		}
	}
	return out
}

func stringAttr(attrs []*commonpb.KeyValue, key string) string {
	for _, kv := range attrs {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestTracesReachAnOTLPReceiver runs the real server binary configured for
// traces by OTEL_EXPORTER_OTLP_ENDPOINT alone, and sends it one request
// in a client's trace: the request's spans (HTTP, operation, root field,
// SQL) reach the receiver by the time the server has exited, the batch
// flushed by the shutdown (the batcher's own delay, 5 s, has not passed),
// under the default service name, with the request id the client was
// answered with, in the client's trace.
func TestTracesReachAnOTLPReceiver(t *testing.T) {
	t.Parallel()
	dbURL := testutil.URL(t, testutil.Postgres)
	receiver := newOTLPReceiver(t)
	srv := testutil.StartServer(t, testutil.Options{Env: withSecret(map[string]string{
		"DATABASE_URL":                dbURL,
		"SHUTDOWN_TIMEOUT":            "10s",
		"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.URL,
	})})
	token, err := auth.Mint([]byte(testSecret), auth.MintClaims{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/graphql",
		strings.NewReader(`{"query":"query Count { tasks { totalCount } }"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	res, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"totalCount":0`) {
		t.Fatalf("POST /graphql: %d %s", res.StatusCode, body)
	}
	requestID := res.Header.Get("X-Request-Id")
	if err := srv.Stop(20 * time.Second); err != nil {
		t.Fatalf("stop the server: %v (it must exit cleanly on SIGTERM):\n%s", err, srv.Log())
	}

	names := map[string]bool{}
	for _, s := range receiver.spans() {
		if hex.EncodeToString(s.span.TraceId) != traceID {
			continue // the server's boot statements, in traces of their own
		}
		names[s.span.Name] = true
		if s.service != "taskql-server" {
			t.Errorf("span %q from service %q, want taskql-server", s.span.Name, s.service)
		}
		if got := stringAttr(s.span.Attributes, "request.id"); got != requestID {
			t.Errorf("span %q: request.id %q, want %q", s.span.Name, got, requestID)
		}
	}
	for _, want := range []string{"POST /graphql", "query Count", "Query.tasks", "SELECT"} {
		if !names[want] {
			t.Errorf("no span %q of the request reached the receiver; got %v\n%s", want, names, srv.Log())
		}
	}
}
