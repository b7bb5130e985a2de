package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// defaultMintTTL is long enough for a dev session, short enough that a leaked
// dev token does not live forever.
const defaultMintTTL = time.Hour

// tokenClaims is what Verify decodes. Email and Name are untyped so that a
// token with an odd profile claim still authenticates (with the field left
// empty) instead of failing to decode.
type tokenClaims struct {
	jwt.RegisteredClaims
	Email any `json:"email"`
	Name  any `json:"name"`
}

// Validate is called by jwt after the signature checks out. The viewer id is
// the whole point of the token, so an absent or empty sub is a hard failure.
func (c *tokenClaims) Validate() error {
	if c.Subject == "" {
		return reasonMissingSubject
	}
	return nil
}

func stringClaim(v any) string {
	s, _ := v.(string)
	return s
}

// MintClaims describes a token for Mint. Empty Email, Name, Issuer and
// Audience are left out of the token.
type MintClaims struct {
	Subject  string
	Email    string
	Name     string
	Issuer   string
	Audience string
	// TTL is how long the token is valid; 0 means one hour. A negative TTL
	// yields an already-expired token, which tests find handy.
	TTL time.Duration
}

// mintPayload keeps empty profile claims out of minted tokens.
type mintPayload struct {
	jwt.RegisteredClaims
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// Mint signs an HS256 token for development and tests, so they can talk to a
// server configured with the same secret without running Better Auth. It
// refuses what Verify would refuse anyway (short secret, empty subject)
// rather than hand out a token that can never work.
func Mint(secret []byte, c MintClaims) (string, error) {
	if len(secret) < minSecretLength {
		return "", fmt.Errorf("auth: HS256 secret must be at least %d bytes, got %d", minSecretLength, len(secret))
	}
	if c.Subject == "" {
		return "", errors.New("auth: subject is required")
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = defaultMintTTL
	}
	now := time.Now()
	p := mintPayload{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			Issuer:    c.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Email: c.Email,
		Name:  c.Name,
	}
	if c.Audience != "" {
		p.Audience = jwt.ClaimStrings{c.Audience}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, p).SignedString(secret)
}
