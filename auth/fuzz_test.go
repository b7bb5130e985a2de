package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings to the token parser front, with both
// HS256 and a JWKS configured: a token is accepted only with a subject, and
// every refusal wraps ErrInvalidToken without quoting a secret. Fresh valid
// tokens are added as seeds so that the fuzzer starts from the accepting
// path; committed seeds are in testdata/fuzz.
func FuzzVerify(f *testing.F) {
	k := testKeys()
	srv := newJWKSServer(f, standardJWKS()...)
	v, err := New(f.Context(), Config{JWKSURL: srv.jwksURL(), Secret: secret, Issuer: origin, Audience: origin})
	if err != nil {
		f.Fatal(err)
	}
	for _, tok := range []string{
		sign(f, jwt.SigningMethodHS256, secret, "", claims()),
		sign(f, jwt.SigningMethodEdDSA, k.ed, "ed", claims()),
		sign(f, jwt.SigningMethodES256, k.ec, "ec", claims()),
	} {
		if _, err := v.Verify(f.Context(), tok); err != nil {
			f.Fatalf("seed token refused: %v", err)
		}
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		viewer, err := v.Verify(t.Context(), token)
		if err == nil {
			if viewer.ID == "" {
				t.Fatalf("token %q accepted without a subject", token)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error %v does not wrap ErrInvalidToken", err)
		}
		if strings.Contains(err.Error(), string(secret)) {
			t.Fatalf("error %q quotes the secret", err)
		}
	})
}
