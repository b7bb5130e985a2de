package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskql/server/model"
)

func TestMintRoundTripsThroughVerify(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret, Issuer: origin, Audience: origin})
	tok, err := Mint(secret, MintClaims{
		Subject: "user-7", Email: "grace@example.test", Name: "Grace Hopper",
		Issuer: origin, Audience: origin,
	})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	got, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Mint's default lifetime is an hour, and exp counts whole seconds.
	if until := time.Until(got.ExpiresAt); until <= time.Hour-time.Minute || until > time.Hour {
		t.Errorf("ExpiresAt is %v from now, want the hour Mint gives", until)
	}
	want := model.Viewer{ID: "user-7", Email: "grace@example.test", Name: "Grace Hopper", ExpiresAt: got.ExpiresAt}
	if got != want {
		t.Fatalf("viewer = %+v, want %+v", got, want)
	}

	// A verifier with another secret, or expecting another issuer, refuses it.
	for _, cfg := range []Config{
		{Secret: otherSecret},
		{Secret: secret, Issuer: "https://elsewhere.example"},
	} {
		if _, err := newVerifier(t, cfg).Verify(t.Context(), tok); err == nil {
			t.Fatalf("token minted for %s accepted by verifier with %+v", origin, cfg.Issuer)
		}
	}
}

func TestMintSetsIssuedAtAndExpiry(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"zero TTL means one hour", 0, time.Hour},
		{"explicit TTL", 5 * time.Minute, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Truncate(time.Second)
			tok, err := Mint(secret, MintClaims{Subject: "u", TTL: tt.ttl})
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			var c jwt.MapClaims
			parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return secret, nil },
				jwt.WithValidMethods([]string{"HS256"}))
			if err != nil {
				t.Fatalf("parse minted token: %v", err)
			}
			c = parsed.Claims.(jwt.MapClaims)
			iat, _ := c.GetIssuedAt()
			exp, _ := c.GetExpirationTime()
			if iat == nil || exp == nil {
				t.Fatalf("iat/exp missing: %v", c)
			}
			if iat.Before(before) || iat.After(time.Now()) {
				t.Fatalf("iat = %v, want now", iat.Time)
			}
			if d := exp.Sub(iat.Time); d != tt.want {
				t.Fatalf("exp - iat = %v, want %v", d, tt.want)
			}
			for _, k := range []string{"email", "name", "iss", "aud", "nbf"} {
				if _, ok := c[k]; ok {
					t.Errorf("empty %s should be omitted, got %v", k, c[k])
				}
			}
		})
	}
}

func TestMintNegativeTTLYieldsExpiredToken(t *testing.T) {
	tok, err := Mint(secret, MintClaims{Subject: "u", TTL: -time.Hour})
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	_, err = newVerifier(t, Config{Secret: secret}).Verify(t.Context(), tok)
	checkRejected(t, err, tok, "expired")
}

func TestMintRefusesWhatVerifyWouldRefuse(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		claims MintClaims
	}{
		{"secret shorter than 32 bytes", []byte("too-short"), MintClaims{Subject: "u"}},
		{"no secret", nil, MintClaims{Subject: "u"}},
		{"empty subject", secret, MintClaims{Email: "a@example.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Mint(tt.secret, tt.claims)
			if err == nil {
				t.Fatalf("Mint succeeded with token of %d bytes, want error", len(tok))
			}
			if len(tt.secret) > 0 && strings.Contains(err.Error(), string(tt.secret)) {
				t.Fatalf("error %q quotes the secret", err)
			}
		})
	}
}
