package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
)

// loopbackHosts is ALLOWED_HOSTS as development has it by default
// (config's own test pins that default).
var loopbackHosts = []string{"localhost", "127.0.0.1", "[::1]"}

// TestForeignHostIsMisdirectedBeforeAnythingRuns plays DNS rebinding on a
// development server: a page of rebind.attacker.example whose name now
// resolves to 127.0.0.1 asks for the IDE, the API and the health checks.
// Every path answers 421 with a short plain body, without the IDE's token;
// the loopback names, with any port, are served.
func TestForeignHostIsMisdirectedBeforeAnythingRuns(t *testing.T) {
	t.Parallel()
	const ideToken = "development-token-that-must-not-leak"
	srv := newServer(t, testutil.SQLite, func(c *api.Config) {
		c.AllowedHosts = loopbackHosts
		c.IDE = true
		c.IDEToken = ideToken
	})
	tests := []struct {
		name string
		host string
		want int
	}{
		{"a rebound foreign name", "rebind.attacker.example", http.StatusMisdirectedRequest},
		{"a rebound foreign name with the server's port", "rebind.attacker.example:8080", http.StatusMisdirectedRequest},
		{"a name that ends like an allowed one", "evil-localhost", http.StatusMisdirectedRequest},
		{"a subdomain of an allowed name", "x.localhost", http.StatusMisdirectedRequest},
		{"another loopback address", "127.0.0.2:8080", http.StatusMisdirectedRequest},
		{"an IPv6 address written without brackets and a port", "::1:8080", http.StatusMisdirectedRequest},
		{"localhost with a port", "localhost:8080", http.StatusOK},
		{"localhost in capitals with a trailing dot", "LOCALHOST.:3000", http.StatusOK},
		{"127.0.0.1 with a port", "127.0.0.1:8080", http.StatusOK},
		{"[::1] with a port", "[::1]:8080", http.StatusOK},
		{"[::1] without a port", "[::1]", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, req := range []request{
				{Method: http.MethodGet, Path: "/"},
				{Method: http.MethodGet, Path: "/healthz"},
				{Method: http.MethodGet, Path: "/graphql?query=%7B__typename%7D"},
				{Body: strings.NewReader(`{"query":"{ __typename }"}`)},
				{Method: http.MethodOptions, Path: "/graphql", Header: http.Header{"Origin": {"http://localhost:3000"}, "Access-Control-Request-Method": {"POST"}}},
			} {
				req.Host = tt.host
				r := srv.do(t, req)
				what := req.Method + " " + req.Path
				if req.Method == "" {
					what = "POST /graphql"
				}
				if tt.want != http.StatusOK {
					if r.Status != tt.want {
						t.Errorf("%s with Host %q: status %d, want %d: %s", what, tt.host, r.Status, tt.want, r.Body)
					}
					if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
						t.Errorf("%s: Content-Type %q, want text/plain", what, ct)
					}
					if strings.Contains(string(r.Body), ideToken) || len(r.Body) > 200 || r.Header.Get("Access-Control-Allow-Origin") != "" {
						t.Errorf("%s: the refusal says too much: %v %s", what, r.Header, r.Body)
					}
					continue
				}
				if r.Status >= 300 {
					t.Errorf("%s with Host %q: status %d, want it served: %s", what, tt.host, r.Status, r.Body)
				}
			}
		})
	}
	// And the IDE, served, does carry the token: the check above is not
	// vacuous.
	if r := srv.do(t, request{Method: http.MethodGet, Path: "/", Host: "localhost:8080"}); !strings.Contains(string(r.Body), ideToken) {
		t.Errorf("the IDE served to localhost does not carry its token: %.200s", r.Body)
	}
}

// TestAnyHostIsServedWhenNoneIsConfigured pins production's default: an
// empty AllowedHosts, or "*", answers whatever name a load balancer used.
func TestAnyHostIsServedWhenNoneIsConfigured(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		allowed []string
	}{
		{"none configured", nil},
		{"wildcard", []string{"*"}},
		{"a domain and its subdomains", []string{".example.com"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.AllowedHosts = tt.allowed })
			for _, host := range []string{"api.example.com", "api.example.com:443", "example.com"} {
				if r := srv.do(t, request{Method: http.MethodGet, Path: "/healthz", Host: host}); r.Status != http.StatusOK {
					t.Errorf("Host %q: status %d: %s", host, r.Status, r.Body)
				}
			}
		})
	}
}

// TestAllowedHostEntries pins what CheckAllowedHost, which config uses for
// ALLOWED_HOSTS, accepts.
func TestAllowedHostEntries(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		entry string
		ok    bool
	}{
		{"localhost", true},
		{"api.example.com:8443", true},
		{"[::1]", true},
		{"[::1]:8080", true},
		{"::1", true},
		{".example.com", true},
		{"*", true},
		{"https://api.example.com", false},
		{"api.example.com/graphql", false},
		{"api.example.com:https", false},
		{"[::1", false},
		{"*.example.com", false},
		{"..example.com", false},
		{"", false},
		{"user@api.example.com", false},
	} {
		err := api.CheckAllowedHost(tt.entry)
		if (err == nil) != tt.ok {
			t.Errorf("CheckAllowedHost(%q) = %v, want ok %v", tt.entry, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "is not a host") {
			t.Errorf("CheckAllowedHost(%q): error %q does not say what is wrong", tt.entry, err)
		}
	}
}
