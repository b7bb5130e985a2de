package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskql/server/auth"
	"github.com/taskql/server/testutil"
)

// TestServeThroughATransactionPooler pins CONTRACT §2 behind PgBouncer in
// transaction mode: DATABASE_URL through the pooler works as pasted when
// DATABASE_DIRECT_URL is direct, and a DATABASE_DIRECT_URL that goes
// through the pooler, set or derived from DATABASE_URL, is refused at boot
// with one line naming the variable (LISTEN cannot work there).
func TestServeThroughATransactionPooler(t *testing.T) {
	t.Parallel()
	bouncer := testutil.StartPgBouncer(t)
	name := testutil.NewPostgresDatabase(t)
	pooled, direct := bouncer.URL(name), bouncer.DirectURL(name)
	tests := []struct {
		name      string
		vars      map[string]string
		wantError string // "" boots
	}{
		{"pooled DATABASE_URL with a direct DATABASE_DIRECT_URL boots",
			map[string]string{"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": direct}, ""},
		{"DATABASE_DIRECT_URL through the pooler is refused",
			map[string]string{"DATABASE_URL": pooled, "DATABASE_DIRECT_URL": pooled}, "DATABASE_DIRECT_URL: two connections"},
		{"no DATABASE_DIRECT_URL with a pooled DATABASE_URL is refused",
			map[string]string{"DATABASE_URL": pooled}, "DATABASE_DIRECT_URL: not set, so LISTEN uses DATABASE_URL: two connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := withSecret(tt.vars)
			vars["LISTEN_ADDR"] = "127.0.0.1:0"
			srv := startServe(t, vars)
			if tt.wantError != "" {
				select {
				case err := <-srv.done:
					if err == nil || !strings.HasPrefix(err.Error(), tt.wantError) || strings.Contains(err.Error(), "\n") {
						t.Fatalf("serve = %v, want one line starting %q", err, tt.wantError)
					}
				case <-srv.log.url:
					t.Fatal("serve listened, want it refused at boot")
				case <-time.After(30 * time.Second):
					t.Fatal("serve neither refused nor listened within 30s")
				}
				return
			}
			base := srv.url(t)
			token, err := auth.Mint([]byte(testSecret), auth.MintClaims{Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Timeout: 20 * time.Second}
			for range 3 {
				if got := postGraphQL(t, client, base, token, strings.NewReader(`{"query":"mutation { createTask(input: {title: \"pooled\"}) { title } }"}`), nil); got != `{"createTask":{"title":"pooled"}}` {
					t.Fatalf("createTask answered %s", got)
				}
			}
			srv.cancel()
			if err := <-srv.done; err != nil {
				t.Fatalf("serve: %v", err)
			}
		})
	}
}
