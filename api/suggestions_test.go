package api_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/testutil"
	"github.com/taskql/server/testutil/gqlws"
)

// misspellings are documents with one name wrong, for each kind of name
// gqlparser's validation suggests a fix for, with the text only the
// suggestion would add to the errors.
var misspellings = []struct {
	name, query, suggestion string
}{
	{"field", `{ tsks { totalCount } }`, `"tasks"`},
	{"argument", `{ tasks(frist: 1) { totalCount } }`, `"first"`},
	{"input field", `{ tasks(filter: {serch: "a"}) { totalCount } }`, `"search"`},
	{"enum value", `{ tasks(orderBy: {field: TITEL, direction: ASC}) { totalCount } }`, `"TITLE"`},
	{"enum value written as a string", `{ tasks(orderBy: {field: "TITEL", direction: ASC}) { totalCount } }`, `"TITLE"`},
	{"type in a fragment condition", `{ tasks { nodes { ...F } } } fragment F on Tsak { id }`, `"Task"`},
	{"selection missing under an object field", `{ tasks }`, `{ ... }`},
}

// TestSuggestionsOffMeansOffEverywhere sends each misspelling over HTTP and
// over a websocket: with suggestions on, the error names the fix; with
// them off, no error says "Did you mean" or names the fix, whatever kind
// of name was wrong (gqlgen's own switch covered fields only).
func TestSuggestionsOffMeansOffEverywhere(t *testing.T) {
	t.Parallel()
	alice := mint(t, "alice")
	for _, mode := range []struct {
		name string
		off  bool
	}{{"suggestions on", false}, {"suggestions off", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, testutil.SQLite, func(c *api.Config) { c.Limits.DisableSuggestions = mode.off })
			check := func(t *testing.T, transport, suggestion string, errs []gqlError) {
				t.Helper()
				if len(errs) == 0 {
					t.Fatalf("%s: no errors", transport)
				}
				var messages []string
				for _, e := range errs {
					if e.Code() != "GRAPHQL_VALIDATION_FAILED" {
						t.Errorf("%s: code %q, want GRAPHQL_VALIDATION_FAILED: %s", transport, e.Code(), e.Message)
					}
					messages = append(messages, e.Message)
				}
				all := strings.Join(messages, "\n")
				suggests := strings.Contains(all, "Did you mean") || strings.Contains(all, suggestion)
				if mode.off && suggests {
					t.Errorf("%s: suggestions are off, yet: %s", transport, all)
				}
				if !mode.off && !(strings.Contains(all, "Did you mean") && strings.Contains(all, suggestion)) {
					t.Errorf("%s: suggestions are on, want %s suggested: %s", transport, suggestion, all)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
			defer cancel()
			ws, err := gqlws.Dial(ctx, srv.URL+"/graphql", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer ws.CloseNow()
			if err := ws.Init(ctx, map[string]any{"Authorization": "Bearer " + alice}); err != nil {
				t.Fatalf("connection_init: %v", err)
			}

			for i, tt := range misspellings {
				t.Run(tt.name, func(t *testing.T) {
					check(t, "HTTP", tt.suggestion, srv.gql(t, alice, tt.query, nil).Errors)

					id := strconv.Itoa(i + 1)
					if err := ws.Subscribe(ctx, id, tt.query, nil); err != nil {
						t.Fatalf("subscribe: %v", err)
					}
					msg, err := ws.Next(ctx)
					if err != nil {
						t.Fatalf("websocket: %v", err)
					}
					if msg.Type != "error" || msg.ID != id {
						t.Fatalf("websocket: want error of %s, got %s %s: %s", id, msg.Type, msg.ID, msg.Payload)
					}
					var errs []gqlError
					if err := json.Unmarshal(msg.Payload, &errs); err != nil {
						t.Fatalf("websocket: error payload %s: %v", msg.Payload, err)
					}
					check(t, "websocket", tt.suggestion, errs)
				})
			}
		})
	}
}
