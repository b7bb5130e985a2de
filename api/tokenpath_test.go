package api_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/taskql/server/api"
	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// countedVerifier counts the tokens that reach the real verifier, past the
// handler's cache.
type countedVerifier struct {
	next  api.TokenVerifier
	calls atomic.Int64
}

func (v *countedVerifier) Verify(ctx context.Context, token string) (model.Viewer, error) {
	v.calls.Add(1)
	return v.next.Verify(ctx, token)
}

func TestWebsocketAndHTTPShareOneTokenPathAndCache(t *testing.T) {
	counted := &countedVerifier{}
	srv := newSubscriptionServer(t, testutil.SQLite, func(cfg *api.Config) {
		counted.next = cfg.Verifier
		cfg.Verifier = counted
	})
	token := mint(t, "alice")
	if r := srv.gql(t, token, `{ me { id } }`, nil); r.Status != 200 || len(r.Errors) != 0 {
		t.Fatalf("HTTP query: %d %s", r.Status, r.Body)
	}
	// Every way connection_init may carry the token HTTP verified.
	payloads := initPayloads(token)
	for _, p := range payloads {
		t.Run(p.name, func(t *testing.T) {
			c := dialWS(t, srv, nil)
			ctx, cancel := context.WithTimeout(context.Background(), wsTimeout)
			defer cancel()
			if err := c.Init(ctx, p.payload); err != nil {
				t.Fatalf("connection_init: %v", err)
			}
		})
	}
	if n := counted.calls.Load(); n != 1 {
		t.Fatalf("the token reached the verifier %d times over HTTP and %d websockets, want once: the websocket skips the cache",
			n, len(payloads))
	}
}
