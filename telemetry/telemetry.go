// Package telemetry traces the server with OpenTelemetry: a span per HTTP
// request (continuing the client's W3C traceparent), per GraphQL operation,
// per root field, and per SQL statement, each carrying the request id.
//
// Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; then spans are exported over
// OTLP/HTTP, and the SDK reads the other standard variables itself
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_TRACES_SAMPLER, OTEL_BSP_*, …). Off
// means no provider: Start returns nil, nothing is wrapped or registered,
// and a request costs what it did without this package.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// instrumentation names the tracer of every span this package makes.
const instrumentation = "github.com/taskql/server/telemetry"

// defaultServiceName is service.name when neither OTEL_SERVICE_NAME nor
// OTEL_RESOURCE_ATTRIBUTES names the service.
const defaultServiceName = "taskql-server"

// RequestIDKey is the attribute that carries the request id (the
// X-Request-Id the client is answered with) on every span of a request.
const RequestIDKey = attribute.Key("request.id")

// Enabled reports whether the environment asks for traces: an OTLP
// endpoint is set, and neither OTEL_SDK_DISABLED=true nor
// OTEL_TRACES_EXPORTER=none turns them off.
func Enabled(getenv func(string) string) bool {
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	return strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")) != "none"
}

// Start returns the tracer provider the environment describes and the
// function that flushes and stops it, or a nil provider (and a shutdown
// that does nothing) when tracing is off.
//
// getenv decides whether tracing is on, as it decides the rest of the
// configuration; the SDK then reads the OTEL_* variables from the process
// environment, where the server's own getenv (and a .env file) finds them
// too.
func Start(ctx context.Context, getenv func(string) string) (trace.TracerProvider, func(context.Context) error, error) {
	nothing := func(context.Context) error { return nil }
	if !Enabled(getenv) {
		return nil, nothing, nil
	}
	if err := checkSupported(getenv); err != nil {
		return nil, nothing, err
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nothing, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	// Later detectors win: the environment over the defaults.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", defaultServiceName),
			attribute.String("service.version", version())),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, nothing, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// Without WithSampler the SDK takes OTEL_TRACES_SAMPLER (default:
	// parentbased_always_on); the batcher takes OTEL_BSP_*.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

// checkSupported refuses settings that would otherwise send nothing
// without a word: an exporter or protocol other than OTLP over HTTP.
func checkSupported(getenv func(string) string) error {
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" {
		return fmt.Errorf("OTEL_TRACES_EXPORTER=%s: the server exports traces with otlp only (or none)", e)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := strings.TrimSpace(getenv(name)); p != "" {
			if p != "http/protobuf" {
				return fmt.Errorf("%s=%s: the server exports traces over http/protobuf only", name, p)
			}
			break // the more specific one decides
		}
	}
	return nil
}

// version is the server's module version, or "devel" for a build from a
// work tree.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

type requestIDKey struct{}

// withRequestID puts the request id into ctx for the spans made below it.
func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// requestID is the request id of ctx's request, or "" outside of one.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestAttrs returns the request id attribute for ctx, if it has one,
// followed by attrs.
func requestAttrs(ctx context.Context, attrs ...attribute.KeyValue) []attribute.KeyValue {
	if id := requestID(ctx); id != "" {
		return append([]attribute.KeyValue{RequestIDKey.String(id)}, attrs...)
	}
	return attrs
}
