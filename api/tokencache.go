package api

import (
	"context"
	"sync"
	"time"

	"github.com/taskql/server/model"
)

// Bounds of the verified-token cache.
const (
	// tokenCacheTTL bounds how long a token is taken on the cache's word:
	// a token whose key leaves the JWKS (rotated out or revoked) is refused
	// at most this long after.
	tokenCacheTTL = time.Minute
	// tokenCacheSize bounds the cache's memory (a few hundred bytes per
	// token).
	tokenCacheSize = 10_000
)

// tokenCache remembers the tokens its verifier accepted. A client sends
// the same token with every request, and checking its signature and
// decoding its claims again each time was a twentieth of the CPU of a
// request in the profile (bench/README.md); a map lookup replaces it.
// Only successes are kept, under the whole token, signature included, and
// never past the token's expiry or tokenCacheTTL.
type tokenCache struct {
	next TokenVerifier
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]cachedViewer
}

type cachedViewer struct {
	viewer model.Viewer
	until  time.Time
}

func newTokenCache(next TokenVerifier) *tokenCache {
	return &tokenCache{next: next, now: time.Now, entries: map[string]cachedViewer{}}
}

// Verify implements TokenVerifier.
func (c *tokenCache) Verify(ctx context.Context, token string) (model.Viewer, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[token]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.viewer, nil
	}
	v, err := c.next.Verify(ctx, token)
	if err != nil {
		return v, err
	}
	until := now.Add(tokenCacheTTL)
	if !v.ExpiresAt.IsZero() && v.ExpiresAt.Before(until) {
		until = v.ExpiresAt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= tokenCacheSize {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= tokenCacheSize {
			// Full of live tokens: start over rather than track use.
			clear(c.entries)
		}
	}
	c.entries[token] = cachedViewer{viewer: v, until: until}
	return v, nil
}
