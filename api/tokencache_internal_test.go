package api

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/taskql/server/model"
)

// countingVerifier accepts tokens starting with "ok" and counts its calls.
type countingVerifier struct {
	calls   int
	expires time.Time
}

func (v *countingVerifier) Verify(_ context.Context, token string) (model.Viewer, error) {
	v.calls++
	if len(token) < 2 || token[:2] != "ok" {
		return model.Viewer{}, errors.New("invalid token")
	}
	return model.Viewer{ID: "user-" + token, ExpiresAt: v.expires}, nil
}

func TestTokenCacheVerifiesEachTokenOnceUntilItExpires(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name      string
		expires   time.Time     // the token's exp
		later     time.Duration // when it is presented again
		wantCalls int           // calls of the real verifier in all
	}{
		{"again at once: from the cache", now.Add(time.Hour), time.Second, 1},
		{"again after the cache's TTL: verified again", now.Add(time.Hour), tokenCacheTTL, 2},
		{"again at the token's expiry: verified again", now.Add(10 * time.Second), 10 * time.Second, 2},
		{"a token without expiry: TTL applies", time.Time{}, tokenCacheTTL - time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &countingVerifier{expires: tt.expires}
			c := newTokenCache(v)
			clock := now
			c.now = func() time.Time { return clock }
			for range 2 {
				if got, err := c.Verify(context.Background(), "ok-alice"); err != nil || got.ID != "user-ok-alice" {
					t.Fatalf("Verify = %+v, %v", got, err)
				}
				clock = clock.Add(tt.later)
			}
			if v.calls != tt.wantCalls {
				t.Fatalf("the verifier ran %d times, want %d", v.calls, tt.wantCalls)
			}
		})
	}
}

func TestTokenCacheNeverRemembersAFailure(t *testing.T) {
	v := &countingVerifier{}
	c := newTokenCache(v)
	for range 3 {
		if _, err := c.Verify(context.Background(), "forged"); err == nil {
			t.Fatal("a refused token was accepted")
		}
	}
	if v.calls != 3 {
		t.Fatalf("the verifier ran %d times for 3 refused tokens, want 3", v.calls)
	}
}

func TestTokenCacheStaysBounded(t *testing.T) {
	v := &countingVerifier{}
	c := newTokenCache(v)
	for i := range tokenCacheSize + 10 {
		if _, err := c.Verify(context.Background(), "ok-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.entries.Len(); n > tokenCacheSize {
		t.Fatalf("the cache holds %d tokens, want at most %d", n, tokenCacheSize)
	}
}

func TestTokenCacheEvictsTheLeastRecentlyUsedWhenFull(t *testing.T) {
	v := &countingVerifier{}
	c := newTokenCache(v)
	ctx := context.Background()
	for i := range tokenCacheSize {
		if _, err := c.Verify(ctx, "ok-"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	// ok-0 is used again, so ok-1 is the least recently used.
	if _, err := c.Verify(ctx, "ok-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(ctx, "ok-new"); err != nil {
		t.Fatal(err)
	}
	calls := v.calls
	if _, err := c.Verify(ctx, "ok-0"); err != nil || v.calls != calls {
		t.Fatalf("the recently used token was verified again (%v): a full cache lost it", err)
	}
	if _, err := c.Verify(ctx, "ok-1"); err != nil || v.calls != calls+1 {
		t.Fatalf("the least recently used token was still cached (%v)", err)
	}
}

func TestVerifyAuthorizationAcceptsOnlyABearerToken(t *testing.T) {
	tests := []struct {
		name          string
		authorization string
		wantUser      string // "" means refused
		wantCalls     int
	}{
		{"Bearer and a token", "Bearer ok-a", "user-ok-a", 1},
		{"any case of the scheme", "bEARER ok-a", "user-ok-a", 1},
		{"spaces around the token", "  Bearer   ok-a  ", "user-ok-a", 1},
		{"another scheme", "Basic ok-a", "", 0},
		{"the scheme alone", "Bearer", "", 0},
		{"the scheme and spaces", "Bearer   ", "", 0},
		{"a bare token", "ok-a", "", 0},
		{"a token the verifier refuses", "Bearer forged", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &countingVerifier{}
			got, err := verifyAuthorization(context.Background(), newTokenCache(v), tt.authorization)
			if (err == nil) != (tt.wantUser != "") || got.ID != tt.wantUser {
				t.Fatalf("verifyAuthorization(%q) = %+v, %v; want user %q", tt.authorization, got, err, tt.wantUser)
			}
			if v.calls != tt.wantCalls {
				t.Fatalf("the verifier ran %d times, want %d", v.calls, tt.wantCalls)
			}
		})
	}
}
