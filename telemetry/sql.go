package telemetry

import (
	"context"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// The attributes of SQL spans, with the names OpenTelemetry's database
// conventions gave them before 1.26, which most backends still index.
const (
	DBSystemKey    = attribute.Key("db.system")
	DBStatementKey = attribute.Key("db.statement")
	DBOperationKey = attribute.Key("db.operation")
	ServerAddrKey  = attribute.Key("server.address")
)

// maxStatement bounds db.statement, so that no statement makes a span
// grow without bound.
const maxStatement = 4096

// SQLTracer is the pgx tracer (database.Config.Tracer) that makes a client
// span per statement sent to PostgreSQL, a child of the span in the
// statement's context (the root field that ran it), and one per new
// connection, where a cold start shows.
//
// Why pgx's tracer and not a bun.QueryHook (bun's bunotel or one of our
// own): the model sends its statements to database/sql itself, with their
// values bound (see model/statement.go), so Bun's hooks never see them. pgx sees
// every statement, and its text has $1, $2… where the values go: user data
// (task titles, user ids) is never in a span. SQLite, the development
// database, goes through no pgx and makes no SQL spans.
type SQLTracer struct {
	tracer trace.Tracer
}

var _ interface {
	pgx.QueryTracer
	pgx.ConnectTracer
} = (*SQLTracer)(nil)

// NewSQLTracer returns the tracer, making its spans with tp.
func NewSQLTracer(tp trace.TracerProvider) *SQLTracer {
	return &SQLTracer{tracer: tp.Tracer(instrumentation)}
}

// TraceQueryStart starts the statement's span.
func (t *SQLTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	operation := sqlOperation(data.SQL)
	stmt := data.SQL
	if len(stmt) > maxStatement {
		stmt = strings.ToValidUTF8(stmt[:maxStatement], "")
	}
	ctx, _ = t.tracer.Start(ctx, operation, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(requestAttrs(ctx,
			DBSystemKey.String("postgresql"), DBOperationKey.String(operation), DBStatementKey.String(stmt))...))
	return ctx
}

// TraceQueryEnd ends the statement's span, failed if the statement did.
func (t *SQLTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(trace.SpanFromContext(ctx), data.Err)
}

// TraceConnectStart starts the span of a new connection.
func (t *SQLTracer) TraceConnectStart(ctx context.Context, data pgx.TraceConnectStartData) context.Context {
	attrs := []attribute.KeyValue{DBSystemKey.String("postgresql")}
	if c := data.ConnConfig; c != nil && c.Host != "" {
		attrs = append(attrs, ServerAddrKey.String(c.Host))
	}
	ctx, _ = t.tracer.Start(ctx, "connect", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(requestAttrs(ctx, attrs...)...))
	return ctx
}

// TraceConnectEnd ends the span of a new connection.
func (t *SQLTracer) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	end(trace.SpanFromContext(ctx), data.Err)
}

func end(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// sqlOperation is the statement's first keyword, upper case: SELECT,
// INSERT, WITH, BEGIN…
func sqlOperation(sql string) string {
	sql = strings.TrimLeftFunc(sql, unicode.IsSpace)
	end := strings.IndexFunc(sql, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(sql)
	}
	if end == 0 || end > 16 {
		return "SQL"
	}
	return strings.ToUpper(sql[:end])
}
