package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

// TestDeferIsStreamedOrRefused pins @defer: a client that accepts
// multipart/mixed gets the deferred fields in a later part, and any other
// client gets a clear 400 instead of silently missing fields.
func TestDeferIsStreamedOrRefused(t *testing.T) {
	srv := newServer(t, testutil.SQLite)
	token := mint(t, "alice", func(c *auth.MintClaims) { c.Email = "alice@example.com" })
	const doc = `{"query":"{ me { id ... @defer { email } } }"}`

	t.Run("multipart/mixed streams the deferred part", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(doc))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "multipart/mixed;deferSpec=20220824, application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/mixed") {
			t.Fatalf("status %d, content type %q; body %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		for _, want := range []string{`"incremental"`, `alice@example.com`, `"hasNext":false`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("stream lacks %s: %s", want, body)
			}
		}
	})

	t.Run("plain JSON is refused with 400", func(t *testing.T) {
		resp := srv.do(t, request{Token: token, Body: strings.NewReader(doc)})
		resp.mustBeRequestError(t, http.StatusBadRequest, "")
		if !strings.Contains(string(resp.Body), "@defer") {
			t.Errorf("error does not name @defer: %s", resp.Body)
		}
	})
}
