package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

type requestKey struct{}

// requestInfo is what the access log learns about a request as it passes
// through the handlers.
type requestInfo struct {
	id        string
	userID    atomic.Pointer[string]
	operation atomic.Pointer[operationInfo]
}

// operationInfo is the GraphQL operation a request ran.
type operationInfo struct {
	name  string   // empty for an anonymous operation
	typ   string   // query, mutation, or invalid for a document that did not parse or validate
	codes []string // the distinct error codes of the answer
}

// RequestID returns the id of the request ctx belongs to, which is also
// sent to the client in X-Request-Id and in extensions.requestId of
// internal errors, so that a report can be matched with the log.
func RequestID(ctx context.Context) string {
	if info, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		return info.id
	}
	return ""
}

func setUser(ctx context.Context, id string) {
	if info, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		info.userID.Store(&id)
	}
}

func setOperation(ctx context.Context, op operationInfo) {
	if info, ok := ctx.Value(requestKey{}).(*requestInfo); ok {
		info.operation.Store(&op)
	}
}

// withRequestID gives every request an id: the client's X-Request-Id when
// it is a sane token (so traces can span services), else a random one.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			var b [12]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestKey{}, &requestInfo{id: id})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush sends buffered data to the client, for streamed (@defer) answers,
// to callers that ask for an http.Flusher rather than going through
// http.ResponseController.
func (s *statusRecorder) Flush() {
	http.NewResponseController(s.ResponseWriter).Flush()
}

// logRequests writes one access-log line per request, at debug level for
// health checks so that probes do not drown the log, and counts the
// response in metrics.
func logRequests(log *slog.Logger, metrics *Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("request_id", RequestID(r.Context())),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)),
		}
		if info, ok := r.Context().Value(requestKey{}).(*requestInfo); ok {
			if u := info.userID.Load(); u != nil {
				attrs = append(attrs, slog.String("user_id", *u))
			}
			if op := info.operation.Load(); op != nil {
				attrs = append(attrs, slog.String("operation", op.name), slog.String("operation_type", op.typ))
				if len(op.codes) > 0 {
					attrs = append(attrs, slog.Any("error_codes", op.codes))
				}
			}
		}
		log.LogAttrs(r.Context(), level, "request", attrs...)
		metrics.observeResponse(r.URL.Path, rec.status)
	})
}

// readBody reads a whole request body of at most max bytes, so that an
// oversized body is answered with 413 rather than a JSON syntax error.
func readBody(r *http.Request, max int64) (io.ReadCloser, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, max))
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
