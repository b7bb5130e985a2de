package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/taskql/server/model"
)

// Bounds of the verified-token cache.
const (
	// tokenCacheTTL bounds how long a token is taken on the cache's word:
	// a token whose key leaves the JWKS (rotated out or revoked) is refused
	// at most this long after.
	tokenCacheTTL = time.Minute
	// tokenCacheSize bounds the cache's memory (a few hundred bytes per
	// token); the least recently used token makes room for a new one.
	tokenCacheSize = 10_000
)

// tokenCache remembers the tokens its verifier accepted. A client sends
// the same token with every request, and checking its signature and
// decoding its claims again each time was a twentieth of the CPU of a
// request in the profile (bench/README.md); a cache lookup replaces it.
// Only successes are kept, under the whole token, signature included, and
// never past the token's expiry or tokenCacheTTL.
//
// The entries live in an expirable LRU, which evicts the least recently
// used when full and drops entries tokenCacheTTL after they were added;
// each entry also carries its own deadline, the earlier of that and the
// token's exp, checked on every lookup. The LRU's cleanup goroutine lives
// as long as the process (the library cannot stop it), one per handler.
type tokenCache struct {
	next TokenVerifier
	// now is time.Now; tests replace it.
	now     func() time.Time
	entries *expirable.LRU[string, cachedViewer]
}

// cachedViewer is a verified token's viewer and when the cache stops
// vouching for it.
type cachedViewer struct {
	viewer model.Viewer
	until  time.Time
}

// newTokenCache returns a cache in front of next.
func newTokenCache(next TokenVerifier) *tokenCache {
	return &tokenCache{next: next, now: time.Now,
		entries: expirable.NewLRU[string, cachedViewer](tokenCacheSize, nil, tokenCacheTTL)}
}

// Verify implements TokenVerifier.
func (c *tokenCache) Verify(ctx context.Context, token string) (model.Viewer, error) {
	now := c.now()
	if e, ok := c.entries.Get(token); ok {
		if now.Before(e.until) {
			return e.viewer, nil
		}
		c.entries.Remove(token)
	}
	v, err := c.next.Verify(ctx, token)
	if err != nil {
		return v, err
	}
	until := now.Add(tokenCacheTTL)
	if !v.ExpiresAt.IsZero() && v.ExpiresAt.Before(until) {
		until = v.ExpiresAt
	}
	c.entries.Add(token, cachedViewer{viewer: v, until: until})
	return v, nil
}

// verifyAuthorization is the server's one token path, for HTTP requests
// and websocket connections alike: it parses an Authorization value,
// "Bearer <token>" with any case of the scheme, and verifies the token
// through tokens, the handler's token cache.
func verifyAuthorization(ctx context.Context, tokens TokenVerifier, authorization string) (model.Viewer, error) {
	token, ok := bearerToken(authorization)
	if !ok {
		return model.Viewer{}, errors.New("the Authorization header must be Bearer <token>")
	}
	return tokens.Verify(ctx, token)
}

// bearerToken returns the token of an Authorization value "Bearer
// <token>" (any case of the scheme, spaces around either ignored), or
// false for a value in another form or without a token.
func bearerToken(authorization string) (string, bool) {
	scheme, token, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	token = strings.TrimSpace(token)
	return token, strings.EqualFold(scheme, "Bearer") && token != ""
}
