package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Handler returns next with a server span around each request, a child
// of the client's span when the request carries a W3C traceparent, and
// with the request id (as requestID finds it in the request's context)
// on it and on every span made below it. Health checks and /metrics,
// which probes call every few seconds, are not traced. With a nil tp it
// returns next itself.
func Handler(tp trace.TracerProvider, requestID func(context.Context) string, next http.Handler) http.Handler {
	if tp == nil {
		return next
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if id := requestID(ctx); id != "" {
			trace.SpanFromContext(ctx).SetAttributes(RequestIDKey.String(id))
			r = r.WithContext(withRequestID(ctx, id))
		}
		next.ServeHTTP(w, r)
	})
	return otelhttp.NewHandler(inner, "",
		otelhttp.WithTracerProvider(tp),
		// Not the global propagator, which is a no-op unless set: the
		// client's traceparent is what ties its trace to ours.
		otelhttp.WithPropagators(propagation.TraceContext{}),
		// No metrics: /metrics has them.
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/metrics":
				return false
			}
			return true
		}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if r.URL.Path == "/graphql" {
				return r.Method + " /graphql"
			}
			return r.Method // other paths are the IDE's, or unknown
		}),
	)
}
