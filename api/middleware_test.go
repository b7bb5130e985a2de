package api_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
)

func TestCORS(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	alice := mint(t, "alice")
	preflight := func(origin string) request {
		return request{Method: http.MethodOptions, Header: http.Header{
			"Origin":                         {origin},
			"Access-Control-Request-Method":  {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type"},
		}}
	}
	post := func(origin string) request {
		return request{Token: alice, Header: http.Header{"Origin": {origin}}, Body: jsonBody(`{"query":"{ me { id } }"}`)}
	}

	t.Run("a preflight from an allowed origin is echoed and may send Authorization and Content-Type", func(t *testing.T) {
		r := srv.do(t, preflight("http://localhost:3000"))
		if r.Status/100 != 2 {
			t.Errorf("status %d, want 2xx", r.Status)
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:3000" {
			t.Errorf("Access-Control-Allow-Origin = %q, want the origin echoed", got)
		}
		allowed := strings.ToLower(strings.Join(r.Header.Values("Access-Control-Allow-Headers"), ","))
		for _, h := range []string{"authorization", "content-type"} {
			if !strings.Contains(allowed, h) {
				t.Errorf("Access-Control-Allow-Headers = %q, want it to allow %s", allowed, h)
			}
		}
		if methods := r.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(methods, "POST") {
			t.Errorf("Access-Control-Allow-Methods = %q, want POST", methods)
		}
	})
	t.Run("a POST from an allowed origin is answered with the origin and can read X-Request-Id", func(t *testing.T) {
		r := srv.do(t, post("http://localhost:3000"))
		r.mustOK(t, nil)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "http://localhost:3000" {
			t.Errorf("Access-Control-Allow-Origin = %q, want the origin echoed", got)
		}
		if got := r.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(strings.ToLower(got), "x-request-id") {
			t.Errorf("Access-Control-Expose-Headers = %q, want X-Request-Id", got)
		}
	})
	for _, origin := range []string{"https://evil.example", "http://localhost:3001", "http://localhost:3000.evil.example", "null"} {
		t.Run("origin "+origin+" is never allowed", func(t *testing.T) {
			for name, req := range map[string]request{"preflight": preflight(origin), "POST": post(origin)} {
				r := srv.do(t, req)
				got := r.Header.Get("Access-Control-Allow-Origin")
				// Neither "*" nor the origin echoed: no header at all.
				if got != "" {
					t.Errorf("%s: Access-Control-Allow-Origin = %q, want none", name, got)
				}
				if h := r.Header.Get("Access-Control-Allow-Headers"); h != "" {
					t.Errorf("%s: Access-Control-Allow-Headers = %q, want none", name, h)
				}
			}
		})
	}
	t.Run("a request that names no origin gets no CORS headers", func(t *testing.T) {
		r := srv.do(t, request{Token: alice, Body: jsonBody(`{"query":"{ me { id } }"}`)})
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin = %q, want none", got)
		}
	})
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	notReady := errors.New("database unreachable: dial tcp 10.0.0.1:5432")
	tests := []struct {
		name   string
		path   string
		ready  func(context.Context) error
		status int
	}{
		{"healthz is 200", "/healthz", nil, http.StatusOK},
		{"healthz is 200 even when not ready", "/healthz", func(context.Context) error { return notReady }, http.StatusOK},
		{"readyz is 200 without a readiness check", "/readyz", nil, http.StatusOK},
		{"readyz is 200 when Ready returns nil", "/readyz", func(context.Context) error { return nil }, http.StatusOK},
		{"readyz is 503 when Ready fails", "/readyz", func(context.Context) error { return notReady }, http.StatusServiceUnavailable},
		{"readyz is 503 when Ready times out", "/readyz", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Ready = tt.ready })
			r := srv.do(t, request{Method: http.MethodGet, Path: tt.path})
			if r.Status != tt.status {
				t.Fatalf("GET %s = %d, want %d: %s", tt.path, r.Status, tt.status, r.Body)
			}
			if strings.Contains(string(r.Body), "10.0.0.1") {
				t.Errorf("GET %s tells the client the cause: %s", tt.path, r.Body)
			}
			if tt.status == http.StatusServiceUnavailable && tt.path == "/readyz" {
				if entries := srv.Log.Entries(t, "msg", "not ready"); len(entries) != 1 {
					t.Errorf("want one 'not ready' log record, got %v", entries)
				}
			}
		})
	}
}

func TestIDE(t *testing.T) {
	t.Parallel()
	token := mint(t, "dev-user")
	tests := []struct {
		name      string
		ide       bool
		ideToken  string
		path      string
		status    int
		wantToken bool
	}{
		{"served at / when enabled", true, "", "/", http.StatusOK, false},
		{"carries the development token when set", true, token, "/", http.StatusOK, true},
		{"404 when disabled", false, "", "/", http.StatusNotFound, false},
		{"404 when disabled even with a token", false, token, "/", http.StatusNotFound, false},
		{"only at / itself", true, token, "/index.html", http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.IDE, c.IDEToken = tt.ide, tt.ideToken })
			r := srv.do(t, request{Method: http.MethodGet, Path: tt.path, Accept: "text/html"})
			if r.Status != tt.status {
				t.Fatalf("GET %s = %d, want %d", tt.path, r.Status, tt.status)
			}
			body := string(r.Body)
			if tt.status == http.StatusOK {
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Errorf("Content-Type = %q, want text/html", ct)
				}
				if !strings.Contains(strings.ToLower(body), "graphiql") || !strings.Contains(body, "/graphql") {
					t.Errorf("the page is not a GraphiQL for /graphql:\n%.500s", body)
				}
			}
			if got := strings.Contains(body, token); got != tt.wantToken {
				t.Errorf("token in page = %v, want %v", got, tt.wantToken)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
	tests := []struct {
		name     string
		incoming string
		echoed   bool
	}{
		{"generated when absent", "", false},
		{"a sane id is echoed", "req-42_abc.DEF", true},
		{"64 characters are echoed", strings.Repeat("a", 64), true},
		{"65 characters are replaced", strings.Repeat("a", 65), false},
		{"spaces are replaced", "two words", false},
		{"markup is replaced", "<script>alert(1)</script>", false},
		{"non-ASCII is replaced", "idé", false},
		{"quotes are replaced", `a"b`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := request{Method: http.MethodGet, Path: "/healthz", Header: http.Header{}}
			if tt.incoming != "" {
				req.Header.Set("X-Request-Id", tt.incoming)
			}
			r := srv.serve(t, req)
			got := r.Header.Get("X-Request-Id")
			if tt.echoed {
				if got != tt.incoming {
					t.Errorf("X-Request-Id = %q, want %q echoed", got, tt.incoming)
				}
				return
			}
			if !generated.MatchString(got) {
				t.Errorf("X-Request-Id = %q, want a generated id (24 hex digits)", got)
			}
		})
	}
	t.Run("generated ids differ", func(t *testing.T) {
		t.Parallel()
		a := srv.serve(t, request{Method: http.MethodGet, Path: "/healthz"}).Header.Get("X-Request-Id")
		b := srv.serve(t, request{Method: http.MethodGet, Path: "/healthz"}).Header.Get("X-Request-Id")
		if a == b {
			t.Errorf("two requests got the same id %q", a)
		}
	})
	t.Run("every response carries it, errors included", func(t *testing.T) {
		t.Parallel()
		for _, req := range []request{
			{Method: http.MethodPut},
			{Token: "bad"},
			{Body: jsonBody(`{"query":"{"}`)},
		} {
			if r := srv.serve(t, req); r.Header.Get("X-Request-Id") == "" {
				t.Errorf("status %d without X-Request-Id", r.Status)
			}
		}
	})
}

// TestAccessLog checks the one line per request the operator reads: with
// the request id the client sees and the verified user.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	srv := newServer(t, testutil.SQLite)
	token := mint(t, "alice")
	r := srv.do(t, request{Token: token, Header: http.Header{"X-Request-Id": {"trace-me-1"}}, Body: jsonBody(`{"query":"{ me { id } }"}`)})
	r.mustOK(t, nil)
	entries := srv.Log.Entries(t, "request_id", "trace-me-1")
	if len(entries) != 1 {
		t.Fatalf("want one access log record for the request, got %v", entries)
	}
	e := entries[0]
	if e["msg"] != "request" || e["user_id"] != "alice" || e["status"] != float64(200) || e["path"] != "/graphql" || e["method"] != "POST" {
		t.Errorf("access log record = %v", e)
	}
	if signature := token[strings.LastIndex(token, ".")+1:]; strings.Contains(srv.Log.String(), signature) {
		t.Errorf("the log holds the token: %s", srv.Log)
	}
}
