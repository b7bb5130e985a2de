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
		if got, want := resp.Header.Get("Content-Type"), `multipart/mixed;boundary="-";deferSpec=20220824`; got != want {
			t.Errorf("Content-Type = %q, want %q", got, want)
		}
		// The bytes Apollo Client parses, as gqlgen's MultipartMixed wrote
		// them: the initial payload, then the deferred part in
		// "incremental", then the closing boundary. The cost is on the
		// first part only.
		want := "---\r\nContent-Type: application/json\r\n\r\n" +
			`{"data":{"me":{"id":"alice","email":null}},"hasNext":true,` +
			`"extensions":{"cost":{"budget":{"capacity":50000,"refillPerSecond":10000,"remaining":49947},"limit":5000,"requested":53}}}` + "\r\n---\r\n" +
			"Content-Type: application/json\r\n\r\n" +
			`{"incremental":[{"data":{"email":"alice@example.com"},"path":["me"],"hasNext":false}],"hasNext":false}` + "\r\n-----\r\n"
		if string(body) != want {
			t.Errorf("stream\n%q\nwant\n%q", body, want)
		}
	})

	t.Run("a GET is refused with 400 even accepting multipart/mixed", func(t *testing.T) {
		resp := srv.do(t, request{Method: http.MethodGet, Token: token, Accept: "multipart/mixed;deferSpec=20220824, application/json",
			Path: "/graphql?query=" + urlEscape(`{ me { id ... @defer { email } } }`)})
		resp.mustBeRequestError(t, http.StatusBadRequest, "")
	})

	t.Run("plain JSON is refused with 400", func(t *testing.T) {
		resp := srv.do(t, request{Token: token, Body: strings.NewReader(doc)})
		resp.mustBeRequestError(t, http.StatusBadRequest, "")
		if !strings.Contains(string(resp.Body), "@defer") {
			t.Errorf("error does not name @defer: %s", resp.Body)
		}
	})
}
