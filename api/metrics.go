package api

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/taskql/server/ide"
)

// maxOperationNames bounds the operation names kept as metric labels:
// clients choose them, and each one is a time series. Names past the bound
// are counted as "other".
const maxOperationNames = 100

// Metrics is what /metrics exposes in Prometheus' text format: GraphQL
// operations by name, type and code with their latency, HTTP responses by
// route and status, the database pool, active subscriptions, and the Go
// runtime. A nil *Metrics records nothing, so callers need not check.
type Metrics struct {
	registry      *prometheus.Registry
	operations    *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	responses     *prometheus.CounterVec
	subscriptions prometheus.Gauge

	mu    sync.Mutex
	names map[string]bool
}

// NewMetrics returns the server's metrics, with the pool statistics of db
// when it is not nil. Each Metrics has a registry of its own: nothing is
// registered globally.
func NewMetrics(db *sql.DB) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskql_graphql_operations_total",
			Help: "GraphQL queries and mutations answered, by operation name, type and first error code (OK when none).",
		}, []string{"operation", "type", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskql_graphql_operation_duration_seconds",
			Help:    "Time from receiving a GraphQL query or mutation to its answer, by operation name and type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "type"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskql_http_responses_total",
			Help: "HTTP responses, by route and status code.",
		}, []string{"route", "status"}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "taskql_active_subscriptions",
			Help: "GraphQL subscriptions currently open.",
		}),
		names: map[string]bool{},
	}
	m.registry.MustRegister(m.operations, m.latency, m.responses, m.subscriptions,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if db != nil {
		m.registry.MustRegister(collectors.NewDBStatsCollector(db, "task"))
	}
	return m
}

// SubscriptionStarted counts a subscription that has begun; call
// SubscriptionEnded once when it ends.
func (m *Metrics) SubscriptionStarted() {
	if m != nil {
		m.subscriptions.Inc()
	}
}

// SubscriptionEnded counts a subscription that has ended.
func (m *Metrics) SubscriptionEnded() {
	if m != nil {
		m.subscriptions.Dec()
	}
}

// handler serves the metrics; when token is not empty, only to a request
// that presents it as a bearer token.
func (m *Metrics) handler(token string) http.Handler {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (m *Metrics) observeOperation(name, typ, code string, d time.Duration) {
	if m == nil {
		return
	}
	name = m.label(name)
	m.operations.WithLabelValues(name, typ, code).Inc()
	if d > 0 {
		m.latency.WithLabelValues(name, typ).Observe(d.Seconds())
	}
}

func (m *Metrics) observeResponse(path string, status int) {
	if m == nil {
		return
	}
	m.responses.WithLabelValues(route(path), strconv.Itoa(status)).Inc()
}

// label returns the label for an operation name: the name while fewer than
// maxOperationNames have been seen, else "other".
func (m *Metrics) label(name string) string {
	if name == "" {
		return "anonymous"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.names[name] {
		if len(m.names) >= maxOperationNames {
			return "other"
		}
		m.names[name] = true
	}
	return name
}

// route names the route of path with a bounded set of values.
func route(path string) string {
	switch path {
	case "/graphql", "/healthz", "/readyz", "/metrics", "/":
		return path
	}
	if strings.HasPrefix(path, ide.AssetPrefix) {
		return "ide"
	}
	return "other"
}

// operationObserver tells the access log and the metrics which operation a
// request ran and with which error codes. Subscriptions, which answer once
// per event, are left out.
type operationObserver struct {
	metrics *Metrics
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = operationObserver{}

func (operationObserver) ExtensionName() string                   { return "OperationObserver" }
func (operationObserver) Validate(graphql.ExecutableSchema) error { return nil }

func (o operationObserver) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	opCtx := graphql.GetOperationContext(ctx)
	// Only a document that parsed has a name to trust; a client's
	// operationName for a broken document could be anything.
	name, typ := "", "invalid"
	if op := opCtx.Operation; op != nil {
		if op.Operation == ast.Subscription {
			return resp
		}
		name, typ = op.Name, string(op.Operation)
	}
	var codes []string
	for _, e := range resp.Errors {
		code, _ := e.Extensions["code"].(string)
		if code == "" {
			code = "UNKNOWN"
		}
		if !slices.Contains(codes, code) {
			codes = append(codes, code)
		}
	}
	setOperation(ctx, operationInfo{name: name, typ: typ, codes: codes})
	code := "OK"
	if len(codes) > 0 {
		code = codes[0]
	}
	var d time.Duration
	if start := opCtx.Stats.OperationStart; !start.IsZero() {
		d = time.Since(start)
	}
	o.metrics.observeOperation(name, typ, code, d)
	return resp
}
