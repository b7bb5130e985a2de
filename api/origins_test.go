package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
	"github.com/taskql/server/testutil/gqlws"
)

// sameOrigin stands, in the tables below, for the test server's own
// origin, which is only known once it runs.
const sameOrigin = "(the server's own origin)"

// originCases are the origins a browser may send, under the lists an
// operator may configure, with what CORS answers (the
// Access-Control-Allow-Origin value, "" for none) and whether a websocket
// opens. CORS and websocket decide by the same rule; only the server's own
// origin differs, as a same-origin call needs no CORS at all.
var originCases = []struct {
	name      string
	allowed   []string // CORS_ALLOWED_ORIGINS; nil is production's default
	origin    string   // "" sends no Origin header
	cors      string
	websocket bool
}{
	{"production default: another site gets no CORS and no websocket", nil, "http://evil.example", "", false},
	{"production default: development's origin is not special", nil, "http://localhost:3000", "", false},
	{"production default: the origin null (a sandboxed page)", nil, "null", "", false},
	{"production default: no Origin is a program, not a browser", nil, "", "", true},
	{"production default: the server's own origin (the IDE)", nil, sameOrigin, "", true},
	{"configured origin", []string{"https://app.example.com"}, "https://app.example.com", "https://app.example.com", true},
	{"configured origin written in capitals", []string{"https://App.Example.com"}, "https://app.example.com", "https://app.example.com", true},
	{"configured host on another port", []string{"https://app.example.com"}, "https://app.example.com:8443", "", false},
	{"configured host on another scheme", []string{"https://app.example.com"}, "http://app.example.com", "", false},
	{"a subdomain of a configured origin", []string{"https://app.example.com"}, "https://evil.app.example.com", "", false},
	{"another site while origins are configured", []string{"https://app.example.com"}, "http://evil.example", "", false},
	{"no Origin while origins are configured", []string{"https://app.example.com"}, "", "", true},
	{"the server's own origin while others are configured", []string{"https://app.example.com"}, sameOrigin, "", true},
	{"wildcard written: any site", []string{"*"}, "http://evil.example", "*", true},
	{"wildcard among origins: any site", []string{"https://app.example.com", "*"}, "http://evil.example", "*", true},
}

// TestCORSPreflightAnswersOnlyAllowedOrigins sends the preflight a browser
// sends before a cross-origin POST with a token, and the POST itself: an
// origin that is not allowed never gets "*" or its own origin back.
func TestCORSPreflightAnswersOnlyAllowedOrigins(t *testing.T) {
	t.Parallel()
	for _, tt := range originCases {
		if tt.origin == "" {
			continue // no Origin, no CORS
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.CORSAllowedOrigins = tt.allowed })
			origin := tt.origin
			if origin == sameOrigin {
				origin = srv.URL
			}
			preflight := srv.do(t, request{Method: http.MethodOptions, Header: http.Header{
				"Origin":                         {origin},
				"Access-Control-Request-Method":  {http.MethodPost},
				"Access-Control-Request-Headers": {"authorization,content-type"},
			}})
			if got := preflight.Header.Get("Access-Control-Allow-Origin"); got != tt.cors {
				t.Errorf("preflight: Access-Control-Allow-Origin = %q, want %q", got, tt.cors)
			}
			if tt.cors == "" && preflight.Header.Get("Access-Control-Allow-Headers") != "" {
				t.Errorf("preflight of a refused origin allows headers: %v", preflight.Header)
			}
			post := srv.do(t, request{Header: http.Header{"Origin": {origin}}, Body: strings.NewReader(`{"query":"{ __typename }"}`)})
			if got := post.Header.Get("Access-Control-Allow-Origin"); got != tt.cors {
				t.Errorf("POST: Access-Control-Allow-Origin = %q, want %q", got, tt.cors)
			}
		})
	}
}

// TestWebsocketOpensOnlyFromAllowedOrigins opens a websocket with each
// Origin: one that is not allowed is refused with 403 before the upgrade,
// so it never reaches connection_ack; the others are acknowledged.
func TestWebsocketOpensOnlyFromAllowedOrigins(t *testing.T) {
	t.Parallel()
	alice := mint(t, "alice")
	for _, tt := range originCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.CORSAllowedOrigins = tt.allowed })
			header := http.Header{}
			switch tt.origin {
			case "":
			case sameOrigin:
				header.Set("Origin", srv.URL)
			default:
				header.Set("Origin", tt.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
			defer cancel()
			c, err := gqlws.Dial(ctx, srv.URL+"/graphql", header)
			if !tt.websocket {
				if err == nil {
					c.CloseNow()
					t.Fatal("the upgrade succeeded")
				}
				if c.Response == nil || c.Response.StatusCode != http.StatusForbidden {
					t.Fatalf("want 403 before the upgrade, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			if err := c.Init(ctx, map[string]any{"Authorization": "Bearer " + alice}); err != nil {
				t.Fatalf("connection_init: %v", err)
			}
		})
	}
}
