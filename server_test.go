package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskql/server/auth"
	"github.com/taskql/server/config"
)

const testSecret = "server-tests-hs256-secret-0123456789abcdef"

// env is a getenv over a map, so tests never read the real environment.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// withSecret returns vars plus AUTH_JWT_SECRET, so that development config
// never creates its secret file in the working directory.
func withSecret(vars map[string]string) map[string]string {
	out := map[string]string{"AUTH_JWT_SECRET": testSecret}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

func TestSchemaCommandPrintsSDL(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"schema"}, env(nil), &out, &errOut); err != nil {
		t.Fatalf("schema: %v", err)
	}
	sdl := out.String()
	for _, want := range []string{"type Task", "directive @auth", "type Query", "type Mutation", "createTask(", "@auth"} {
		if !strings.Contains(sdl, want) {
			t.Errorf("SDL lacks %q:\n%s", want, sdl)
		}
	}
	if errOut.Len() > 0 {
		t.Errorf("schema wrote to stderr: %s", errOut.String())
	}
}

func TestTokenCommand(t *testing.T) {
	t.Parallel()
	verifier, err := auth.New(context.Background(), auth.Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("prints a token the verifier accepts for the subject and claims", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"token", "--sub", "alice", "--email", "alice@example.com", "--name", "Alice", "--ttl", "10m"},
			env(withSecret(nil)), &out, &errOut)
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		tok := strings.TrimSpace(out.String())
		if strings.Count(tok, ".") != 2 || strings.ContainsAny(tok, " \n") {
			t.Fatalf("stdout is not one JWT: %q", out.String())
		}
		v, err := verifier.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("the verifier refuses the printed token: %v", err)
		}
		if v.ID != "alice" || v.Email != "alice@example.com" || v.Name != "Alice" {
			t.Errorf("viewer = %+v, want alice with her email and name", v)
		}
	})
	t.Run("a token of another secret is refused", func(t *testing.T) {
		var out bytes.Buffer
		other := withSecret(map[string]string{"AUTH_JWT_SECRET": strings.Repeat("z", 40)})
		if err := run(context.Background(), []string{"token", "--sub", "alice"}, env(other), &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if _, err := verifier.Verify(context.Background(), strings.TrimSpace(out.String())); err == nil {
			t.Errorf("a token minted with another secret verified")
		}
	})
	t.Run("flag errors and usage go to the stderr writer", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"token", "--bogus"}, env(withSecret(nil)), &out, &errOut)
		if err == nil || !strings.HasPrefix(err.Error(), "token: ") {
			t.Errorf("err = %v, want a token: error", err)
		}
		if !strings.Contains(errOut.String(), "-sub") || out.Len() > 0 {
			t.Errorf("stdout %q, stderr %q: want the usage on stderr only", out.String(), errOut.String())
		}
		errOut.Reset()
		if err := run(context.Background(), []string{"token", "--help"}, env(withSecret(nil)), &out, &errOut); err != nil {
			t.Errorf("token --help: %v, want nil", err)
		}
		if !strings.Contains(errOut.String(), "-sub") {
			t.Errorf("token --help printed %q, want the usage", errOut.String())
		}
	})

	refused := []struct {
		name    string
		args    []string
		vars    map[string]string
		wantVar string
	}{
		{"in production", []string{"token", "--sub", "alice"},
			withSecret(map[string]string{"APP_ENV": "production", "DATABASE_URL": "postgres://db.example.com/app"}), "APP_ENV"},
		{"without a secret when a JWKS is configured", []string{"token", "--sub", "alice"},
			map[string]string{"BETTER_AUTH_URL": "https://auth.example.com"}, "AUTH_JWT_SECRET"},
		{"without --sub", []string{"token"}, withSecret(nil), "token: --sub"},
	}
	for _, tt := range refused {
		t.Run("refused "+tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, env(tt.vars), &out, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantVar) {
				t.Fatalf("err = %v, want one starting with %s", err, tt.wantVar)
			}
			if out.Len() > 0 {
				t.Errorf("a refused token command printed %q", out.String())
			}
		})
	}
}

// TestConfigErrorsNameTheVariable checks that each configuration problem
// comes back as one line that starts with the variable at fault.
func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		vars    map[string]string
		wantVar string
	}{
		{"production without DATABASE_URL", withSecret(map[string]string{"APP_ENV": "production"}), "DATABASE_URL"},
		{"production without a way to verify tokens",
			map[string]string{"APP_ENV": "production", "DATABASE_URL": "postgres://db.example.com/app"}, "BETTER_AUTH_URL"},
		{"unknown APP_ENV", withSecret(map[string]string{"APP_ENV": "staging"}), "APP_ENV"},
		{"unsupported database", withSecret(map[string]string{"DATABASE_URL": "mysql://db/app"}), "DATABASE_URL"},
		{"short secret", map[string]string{"AUTH_JWT_SECRET": "short"}, "AUTH_JWT_SECRET"},
		{"bad PORT", withSecret(map[string]string{"PORT": "http"}), "PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), []string{"serve"}, env(tt.vars), io.Discard, io.Discard)
			if err == nil {
				t.Fatal("serve started, want a configuration error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.wantVar) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting with %s", msg, tt.wantVar)
			}
			var cfgErr *config.Error
			if errors.As(err, &cfgErr) && cfgErr.Var != tt.wantVar {
				t.Errorf("config.Error.Var = %q, want %q", cfgErr.Var, tt.wantVar)
			}
		})
	}
	if err := run(context.Background(), []string{"frobnicate"}, env(nil), io.Discard, io.Discard); err == nil {
		t.Errorf("an unknown command succeeded")
	}
}

// serving is serve running in this process for a test, stopped when the
// test ends.
type serving struct {
	log    *logWatcher
	cancel context.CancelFunc
	// done receives what serve returned.
	done chan error
}

// startServe runs serve with the environment vars.
func startServe(t *testing.T, vars map[string]string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{log: newLogWatcher(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, []string{"serve"}, env(vars), io.Discard, s.log) }()
	t.Cleanup(cancel)
	return s
}

// url waits until serve logs the URL it listens on, failing the test if
// it returns first or takes 30 s.
func (s *serving) url(t *testing.T) string {
	t.Helper()
	select {
	case base := <-s.log.url:
		return base
	case err := <-s.done:
		t.Fatalf("serve returned before listening: %v\n%s", err, s.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not log its URL:\n%s", s.log)
	}
	return ""
}

// TestServeBootsAnswersAndShutsDownGracefully boots the whole server on a
// temporary SQLite file, talks to it, and cancels its context while a
// request is in flight: the request completes and run returns nil.
func TestServeBootsAnswersAndShutsDownGracefully(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vars := withSecret(map[string]string{
		"DATABASE_URL":     "sqlite://" + filepath.Join(dir, "tasks.db"),
		"LISTEN_ADDR":      "127.0.0.1:0",
		"SHUTDOWN_TIMEOUT": "20s",
	})
	srv := startServe(t, vars)
	stderr, cancel, done := srv.log, srv.cancel, srv.done
	base := srv.url(t)
	client := &http.Client{Timeout: 20 * time.Second}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/": 200, "/nope": 404} {
		res, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, res.StatusCode, want)
		}
	}

	// DNS rebinding: development answers only its loopback names.
	req, err := http.NewRequest(http.MethodGet, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "rebind.attacker.example"
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET / for another host: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET / with Host %s = %d, want 421", req.Host, res.StatusCode)
	}

	token, err := auth.Mint([]byte(testSecret), auth.MintClaims{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := postGraphQL(t, client, base, token, strings.NewReader(`{"query":"mutation { createTask(input: {title: \"boot\"}) { title } }"}`), nil); got != `{"createTask":{"title":"boot"}}` {
		t.Errorf("createTask answered %s", got)
	}

	// A request whose handler is running (it asked for the body with 100
	// Continue) when shutdown begins, and whose body arrives after.
	body, sendBody := io.Pipe()
	handlerRunning := make(chan struct{})
	answered := make(chan string, 1)
	go func() {
		trace := &httptrace.ClientTrace{Got100Continue: func() { close(handlerRunning) }}
		answered <- postGraphQL(t, client, base, token, body, trace)
	}()
	select {
	case <-handlerRunning:
	case <-time.After(20 * time.Second):
		t.Fatal("the slow request never reached its handler")
	}
	cancel()
	waitUntilRefused(t, strings.TrimPrefix(base, "http://"))
	if _, err := io.WriteString(sendBody, `{"query":"{ tasks { totalCount } }"}`); err != nil {
		t.Fatalf("send the body: %v", err)
	}
	sendBody.Close()
	select {
	case got := <-answered:
		if got != `{"tasks":{"totalCount":1}}` {
			t.Errorf("the in-flight request answered %s during shutdown", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the in-flight request did not complete")
	}

	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after a graceful shutdown, want nil", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("run did not return after ctx was cancelled")
	}
	for _, want := range []string{"shutting down", "stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr)
		}
	}
}

// postGraphQL posts body as alice and returns the data of a 200 answer
// without errors, or "" after reporting what went wrong. It may run in a
// goroutine of its own, so it never calls t.Fatal.
func postGraphQL(t *testing.T, client *http.Client, base, token string, body io.Reader, trace *httptrace.ClientTrace) string {
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", body)
	if err != nil {
		t.Error(err)
		return ""
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if trace != nil {
		req.Header.Set("Expect", "100-continue")
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		// Wait for 100 Continue before sending the body.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ExpectContinueTimeout = time.Minute
		client = &http.Client{Transport: tr, Timeout: client.Timeout}
	}
	res, err := client.Do(req)
	if err != nil {
		t.Errorf("POST /graphql: %v", err)
		return ""
	}
	defer res.Body.Close()
	var out struct {
		Data   json.RawMessage
		Errors []any
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != http.StatusOK || len(out.Errors) > 0 {
		t.Errorf("POST /graphql: status %d, errors %v, decode error %v", res.StatusCode, out.Errors, err)
		return ""
	}
	return string(out.Data)
}

// waitUntilRefused waits for the listener at addr to be closed, which
// Shutdown does first.
func waitUntilRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still accepts connections after ctx was cancelled", addr)
}

// logWatcher is the server's stderr: it keeps what is written and reports
// the URL of the "listening" line.
type logWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	url  chan string
	once sync.Once
}

var listeningURL = regexp.MustCompile(`msg=listening url=(http://127\.0\.0\.1:\d+)`)

func newLogWatcher() *logWatcher { return &logWatcher{url: make(chan string, 1)} }

func (w *logWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if m := listeningURL.FindSubmatch(w.buf.Bytes()); m != nil {
		w.once.Do(func() { w.url <- string(m[1]) })
	}
	return len(p), nil
}

func (w *logWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
