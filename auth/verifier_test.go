package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskql/server/model"
)

// origin plays BETTER_AUTH_URL: Better Auth uses it as both iss and aud.
const origin = "https://auth.example.test"

var (
	secret      = []byte("0123456789abcdef0123456789abcdef-test-secret")
	otherSecret = []byte("a-different-secret-that-is-long-enough-32b")
)

type keySet struct {
	ed      ed25519.PrivateKey
	rsa     *rsa.PrivateKey
	rsaWeak *rsa.PrivateKey
	ec      *ecdsa.PrivateKey
	ecP384  *ecdsa.PrivateKey
	rsaPEM  []byte // the RSA public key as an attacker would download it
}

// testKeys is generated once per test binary: RSA generation under -race is
// the slowest thing these tests do. It is never mutated after creation.
var testKeys = sync.OnceValue(func() keySet {
	var k keySet
	var err error
	must := func(e error) {
		if e != nil {
			panic(e)
		}
	}
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaWeak, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ecP384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	must(err)
	k.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return k
})

// --- JWKS built by hand, so the test does not trust jwkset's marshalling ---

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

type jwk map[string]any

func (j jwk) with(k string, v any) jwk { j[k] = v; return j }

func okpJWK(kid, alg string, pub ed25519.PublicKey) jwk {
	return withAlg(jwk{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pub)}, alg)
}

func rsaJWK(kid, alg string, pub *rsa.PublicKey) jwk {
	e := big.NewInt(int64(pub.E)).Bytes()
	return withAlg(jwk{"kty": "RSA", "kid": kid, "n": b64(pub.N.Bytes()), "e": b64(e)}, alg)
}

func ecJWK(kid, alg string, pub *ecdsa.PublicKey) jwk {
	p, err := pub.ECDH()
	if err != nil {
		panic(err)
	}
	raw := p.Bytes() // 0x04 || X || Y, each coordinate padded to the curve size
	size := (len(raw) - 1) / 2
	crv := map[int]string{32: "P-256", 48: "P-384"}[size]
	return withAlg(jwk{"kty": "EC", "crv": crv, "kid": kid, "x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:])}, alg)
}

func withAlg(j jwk, alg string) jwk {
	if alg != "" {
		j["alg"] = alg
	}
	return j
}

// standardJWKS covers every pinning rule: keys with and without alg, an
// encryption key, a weak RSA key, an unsupported curve and an HMAC key.
func standardJWKS() []jwk {
	k := testKeys()
	return []jwk{
		okpJWK("ed", "EdDSA", k.ed.Public().(ed25519.PublicKey)),
		okpJWK("ed-noalg", "", k.ed.Public().(ed25519.PublicKey)),
		rsaJWK("rsa-rs256", "RS256", &k.rsa.PublicKey),
		rsaJWK("rsa-ps256", "PS256", &k.rsa.PublicKey),
		rsaJWK("rsa-noalg", "", &k.rsa.PublicKey),
		ecJWK("ec", "ES256", &k.ec.PublicKey),
		ecJWK("ec-noalg", "", &k.ec.PublicKey),
		rsaJWK("rsa-enc", "", &k.rsa.PublicKey).with("use", "enc"),
		rsaJWK("rsa-weak", "", &k.rsaWeak.PublicKey),
		ecJWK("ec-p384", "", &k.ecP384.PublicKey),
		rsaJWK("rsa-mislabelled", "ES256", &k.rsa.PublicKey),
		{"kty": "oct", "kid": "oct", "alg": "HS256", "k": b64(k.rsaPEM)},
	}
}

// jwksServer serves a swappable JWKS and counts fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	fail    atomic.Bool
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...jwk) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.serve(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if r.URL.Path != "/api/auth/jwks" {
			http.NotFound(w, r)
			return
		}
		if s.fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(t testing.TB, keys ...jwk) {
	t.Helper()
	if keys == nil {
		keys = []jwk{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	s.body.Store(&b)
}

func (s *jwksServer) jwksURL() string { return s.URL + "/api/auth/jwks" }

// --- tokens ---

type claimMod func(jwt.MapClaims)

func set(k string, v any) claimMod             { return func(c jwt.MapClaims) { c[k] = v } }
func unset(k string) claimMod                  { return func(c jwt.MapClaims) { delete(c, k) } }
func at(d time.Duration) int64                 { return time.Now().Add(d).Unix() }
func setAt(k string, d time.Duration) claimMod { return set(k, at(d)) }

// expOf is the exp claim of c as a time.
func expOf(c jwt.MapClaims) time.Time { return time.Unix(c["exp"].(int64), 0) }

// sameViewer compares viewers, their expiry as instants.
func sameViewer(a, b model.Viewer) bool {
	return a.ExpiresAt.Equal(b.ExpiresAt) && a.ID == b.ID && a.Email == b.Email && a.Name == b.Name
}

func claims(mods ...claimMod) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":   "user-1",
		"email": "ada@example.test",
		"name":  "Ada Lovelace",
		"iss":   origin,
		"aud":   origin,
		"iat":   at(0),
		"exp":   at(5 * time.Minute),
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing %s test token: %v", m.Alg(), err)
	}
	return s
}

// rawToken assembles a token from JSON parts, for shapes jwt refuses to sign.
func rawToken(header, payload string, sig []byte) string {
	return b64([]byte(header)) + "." + b64([]byte(payload)) + "." + b64(sig)
}

func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// checkRejected asserts the error contract: wraps ErrInvalidToken, names the
// expected reason, and quotes neither the token nor a secret.
func checkRejected(t *testing.T, err error, token, wantReason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("token accepted, want rejection %q", wantReason)
	}
	if !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("error %q does not wrap ErrInvalidToken", err)
	}
	if want := "invalid token: " + wantReason; err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	msg := err.Error()
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			t.Fatalf("error %q quotes token text", msg)
		}
	}
	for _, s := range [][]byte{secret, otherSecret} {
		if strings.Contains(msg, string(s)) {
			t.Fatalf("error %q quotes a secret", msg)
		}
	}
}

func TestVerifyAcceptsTokensSignedWithPinnedJWKSKeys(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, standardJWKS()...)
	v := newVerifier(t, Config{JWKSURL: srv.jwksURL(), Issuer: origin, Audience: origin})

	tests := []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"EdDSA with JWK alg EdDSA", jwt.SigningMethodEdDSA, k.ed, "ed"},
		{"EdDSA with OKP JWK without alg", jwt.SigningMethodEdDSA, k.ed, "ed-noalg"},
		{"RS256 with JWK alg RS256", jwt.SigningMethodRS256, k.rsa, "rsa-rs256"},
		{"RS256 with RSA JWK without alg", jwt.SigningMethodRS256, k.rsa, "rsa-noalg"},
		{"PS256 with JWK alg PS256", jwt.SigningMethodPS256, k.rsa, "rsa-ps256"},
		{"ES256 with JWK alg ES256", jwt.SigningMethodES256, k.ec, "ec"},
		{"ES256 with P-256 JWK without alg", jwt.SigningMethodES256, k.ec, "ec-noalg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claims()
			tok := sign(t, tt.method, tt.key, tt.kid, c)
			got, err := v.Verify(t.Context(), tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := model.Viewer{ID: "user-1", Email: "ada@example.test", Name: "Ada Lovelace", ExpiresAt: expOf(c)}
			if !sameViewer(got, want) {
				t.Fatalf("viewer = %+v, want %+v", got, want)
			}
		})
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times for %d tokens with known kids, want 1 (cached)", n, len(tests))
	}
}

func TestVerifyRejectsBadTokens(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, standardJWKS()...)
	jwksOnly := newVerifier(t, Config{JWKSURL: srv.jwksURL(), Issuer: origin, Audience: origin})
	// A secret is configured, but not the one the attacker uses.
	jwksAndSecret := newVerifier(t, Config{JWKSURL: srv.jwksURL(), Secret: otherSecret, Issuer: origin, Audience: origin})

	ed := func(mods ...claimMod) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims(mods...)) }
	valid := ed()
	// The key of another JWKS: of another Better Auth, or an attacker's own.
	_, otherEd, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	noneHeader := `{"alg":"none","typ":"JWT"}`
	payload, _ := json.Marshal(claims())

	tests := []struct {
		name  string
		v     *Verifier
		token string
		want  string
	}{
		// algorithm pinning
		{"PS256 with RSA JWK without alg (implies RS256)", jwksOnly, sign(t, jwt.SigningMethodPS256, k.rsa, "rsa-noalg", claims()), "algorithm does not match key"},
		{"RS256 with JWK pinned to PS256", jwksOnly, sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-ps256", claims()), "algorithm does not match key"},
		{"PS256 with JWK pinned to RS256", jwksOnly, sign(t, jwt.SigningMethodPS256, k.rsa, "rsa-rs256", claims()), "algorithm does not match key"},
		{"ES256 token naming an Ed25519 key", jwksOnly, sign(t, jwt.SigningMethodES256, k.ec, "ed", claims()), "algorithm does not match key"},
		{"RSA JWK labelled ES256", jwksOnly, sign(t, jwt.SigningMethodES256, k.ec, "rsa-mislabelled", claims()), "signing key not usable"},
		{"alg none", jwksOnly, rawToken(noneHeader, string(payload), nil), "algorithm not allowed"},
		{"alg none naming a real key", jwksOnly, rawToken(`{"alg":"none","kid":"ed"}`, string(payload), nil), "algorithm not allowed"},
		{"alg none with secret configured", jwksAndSecret, rawToken(noneHeader, string(payload), nil), "algorithm not allowed"},
		{"alg missing", jwksOnly, rawToken(`{"kid":"ed"}`, string(payload), []byte("sig")), "algorithm not allowed"},
		{"HS256 keyed with RSA public key PEM, no secret configured", jwksOnly, sign(t, jwt.SigningMethodHS256, k.rsaPEM, "rsa-noalg", claims()), "algorithm not allowed"},
		{"HS256 keyed with RSA public key PEM, other secret configured", jwksAndSecret, sign(t, jwt.SigningMethodHS256, k.rsaPEM, "rsa-noalg", claims()), "bad signature"},
		{"HS256 keyed with oct JWK from the JWKS", jwksOnly, sign(t, jwt.SigningMethodHS256, k.rsaPEM, "oct", claims()), "algorithm not allowed"},
		{"RS384 is not an accepted algorithm", jwksOnly, sign(t, jwt.SigningMethodRS384, k.rsa, "rsa-noalg", claims()), "algorithm not allowed"},
		{"encryption key", jwksOnly, sign(t, jwt.SigningMethodRS256, k.rsa, "rsa-enc", claims()), "signing key not usable"},
		{"1024-bit RSA key", jwksOnly, sign(t, jwt.SigningMethodRS256, k.rsaWeak, "rsa-weak", claims()), "signing key not usable"},
		{"oct JWK used for an asymmetric alg", jwksOnly, sign(t, jwt.SigningMethodEdDSA, k.ed, "oct", claims()), "signing key not usable"},
		{"P-384 key", jwksOnly, sign(t, jwt.SigningMethodES256, k.ec, "ec-p384", claims()), "signing key not usable"},
		{"signature by another key", jwksOnly, sign(t, jwt.SigningMethodRS256, k.rsaWeak, "rsa-noalg", claims()), "bad signature"},
		{"key of another JWKS under a kid this JWKS has", jwksOnly, sign(t, jwt.SigningMethodEdDSA, otherEd, "ed", claims()), "bad signature"},
		{"key of another JWKS under its own kid", jwksOnly, sign(t, jwt.SigningMethodEdDSA, otherEd, "other-jwks-key", claims()), "unknown signing key"},
		{"payload tampered after signing", jwksOnly, parts[0] + "." + b64([]byte(strings.Replace(string(payload), "user-1", "user-2", 1))) + "." + parts[2], "bad signature"},
		{"crit header", jwksOnly, func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims())
			tok.Header["kid"], tok.Header["crit"] = "ed", []string{"b64"}
			s, _ := tok.SignedString(k.ed)
			return s
		}(), "unsupported critical header"},

		// key lookup
		{"no kid with JWKS", jwksOnly, sign(t, jwt.SigningMethodEdDSA, k.ed, "", claims()), "missing key id"},
		{"unknown kid", jwksOnly, sign(t, jwt.SigningMethodEdDSA, k.ed, "nope", claims()), "unknown signing key"},

		// claims
		{"expired beyond leeway", jwksOnly, ed(setAt("iat", -time.Hour), setAt("exp", -time.Minute)), "expired"},
		{"exp missing", jwksOnly, ed(unset("exp")), "missing required claim"},
		{"nbf in the future beyond leeway", jwksOnly, ed(setAt("nbf", 2*time.Minute)), "not valid yet"},
		{"iat in the future beyond leeway", jwksOnly, ed(setAt("iat", 2*time.Minute), setAt("exp", 10*time.Minute)), "issued in the future"},
		{"wrong issuer", jwksOnly, ed(set("iss", "https://evil.example")), "wrong issuer"},
		{"issuer missing", jwksOnly, ed(unset("iss")), "missing required claim"},
		{"wrong audience", jwksOnly, ed(set("aud", "https://other.example")), "wrong audience"},
		{"wrong audience list", jwksOnly, ed(set("aud", []string{"a", "b"})), "wrong audience"},
		{"sub missing", jwksOnly, ed(unset("sub")), "missing subject"},
		{"sub empty", jwksOnly, ed(set("sub", "")), "missing subject"},
		{"sub not a string", jwksOnly, ed(set("sub", 42)), "malformed"},

		// shape
		{"empty", jwksOnly, "", "empty"},
		{"oversized but validly signed", jwksOnly, ed(set("pad", strings.Repeat("x", MaxTokenLength))), "too long"},
		{"garbage", jwksOnly, "this is not a token", "malformed"},
		{"four segments", jwksOnly, valid + ".x", "malformed"},
		{"bad base64 in header", jwksOnly, "!!!." + parts[1] + "." + parts[2], "malformed"},
		{"bad base64 in payload", jwksOnly, parts[0] + ".%%%." + parts[2], "malformed"},
		{"bad base64 in signature", jwksOnly, parts[0] + "." + parts[1] + ".***", "malformed"},
		{"padded base64", jwksOnly, parts[0] + "==." + parts[1] + "." + parts[2], "malformed"},
		{"payload not JSON", jwksOnly, parts[0] + "." + b64([]byte("hello")) + "." + parts[2], "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Verify(t.Context(), tt.token)
			checkRejected(t, err, tt.token, tt.want)
		})
	}

	t.Run("the valid base token is accepted by both verifiers", func(t *testing.T) {
		// Guards the table: rejections above must come from the mutation,
		// not from a broken fixture.
		for _, v := range []*Verifier{jwksOnly, jwksAndSecret} {
			if _, err := v.Verify(t.Context(), valid); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
		big := ed(set("pad", strings.Repeat("x", MaxTokenLength/2)))
		if _, err := jwksOnly.Verify(t.Context(), big); err != nil {
			t.Fatalf("token of %d bytes (under the limit) rejected: %v", len(big), err)
		}
	})
}

func TestVerifyAppliesLeewayToTimeClaims(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, standardJWKS()...)
	defaultLeeway := newVerifier(t, Config{JWKSURL: srv.jwksURL()})
	oneSecond := newVerifier(t, Config{JWKSURL: srv.jwksURL(), Leeway: time.Second})
	past := setAt("iat", -time.Hour)

	tests := []struct {
		name string
		v    *Verifier
		mods []claimMod
		want string // empty: accepted
	}{
		{"expired 10s ago, default 30s leeway", defaultLeeway, []claimMod{past, setAt("exp", -10*time.Second)}, ""},
		{"expired 10s ago, 1s leeway", oneSecond, []claimMod{past, setAt("exp", -10*time.Second)}, "expired"},
		{"expired 60s ago, default leeway", defaultLeeway, []claimMod{past, setAt("exp", -time.Minute)}, "expired"},
		{"nbf 10s ahead, default leeway", defaultLeeway, []claimMod{setAt("nbf", 10*time.Second)}, ""},
		{"nbf 10s ahead, 1s leeway", oneSecond, []claimMod{setAt("nbf", 10*time.Second)}, "not valid yet"},
		{"iat 10s ahead, default leeway", defaultLeeway, []claimMod{setAt("iat", 10*time.Second)}, ""},
		{"iat 10s ahead, 1s leeway", oneSecond, []claimMod{setAt("iat", 10*time.Second)}, "issued in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims(tt.mods...))
			_, err := tt.v.Verify(t.Context(), tok)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			checkRejected(t, err, tok, tt.want)
		})
	}
}

func TestVerifyWithSharedSecret(t *testing.T) {
	k := testKeys()
	v := newVerifier(t, Config{Secret: secret, Issuer: origin, Audience: origin})

	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"HS256 with the secret", sign(t, jwt.SigningMethodHS256, secret, "", claims()), ""},
		{"HS256 with a kid is still checked against the secret", sign(t, jwt.SigningMethodHS256, secret, "whatever", claims()), ""},
		{"HS256 with the wrong secret", sign(t, jwt.SigningMethodHS256, otherSecret, "", claims()), "bad signature"},
		{"HS256 keyed with RSA public key PEM", sign(t, jwt.SigningMethodHS256, k.rsaPEM, "", claims()), "bad signature"},
		{"HS384 with the secret", sign(t, jwt.SigningMethodHS384, secret, "", claims()), "algorithm not allowed"},
		{"EdDSA without JWKS configured", sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims()), "algorithm not allowed"},
		{"HS256 expired", sign(t, jwt.SigningMethodHS256, secret, "", claims(setAt("iat", -time.Hour), setAt("exp", -time.Minute))), "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := v.Verify(t.Context(), tt.token)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.ID != "user-1" {
					t.Fatalf("viewer id = %q, want user-1", got.ID)
				}
				return
			}
			checkRejected(t, err, tt.token, tt.want)
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"nothing configured", Config{}, true},
		{"only issuer and audience", Config{Issuer: origin, Audience: origin}, true},
		{"secret of 31 bytes", Config{Secret: make([]byte, 31)}, true},
		{"secret of 32 bytes", Config{Secret: make([]byte, 32)}, false},
		{"JWKS URL only", Config{JWKSURL: origin + "/api/auth/jwks"}, false},
		{"JWKS URL that is not absolute", Config{JWKSURL: "/api/auth/jwks"}, true},
		{"JWKS URL with unsupported scheme", Config{JWKSURL: "ftp://auth.example.test/jwks"}, true},
		{"short secret next to a valid JWKS URL", Config{JWKSURL: origin + "/api/auth/jwks", Secret: []byte("short")}, true},
		{"negative leeway", Config{Secret: secret, Leeway: -time.Second}, true},
		{"negative refresh interval", Config{JWKSURL: origin + "/jwks", RefreshUnknownKIDInterval: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(t.Context(), tt.cfg)
			if tt.wantErr {
				if err == nil {
					t.Fatal("New succeeded, want error")
				}
				if strings.Contains(err.Error(), "short") {
					t.Fatalf("error %q quotes the secret", err)
				}
				return
			}
			if err != nil || v == nil {
				t.Fatalf("New: %v", err)
			}
		})
	}
}

func TestNewSecretIsCopied(t *testing.T) {
	s := append([]byte(nil), secret...)
	v := newVerifier(t, Config{Secret: s})
	tok := sign(t, jwt.SigningMethodHS256, secret, "", claims(unset("iss"), unset("aud")))
	s[0] ^= 0xff // caller reuses its buffer
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify after caller mutated its secret buffer: %v", err)
	}
}

func TestJWKSIsFetchedLazilyAndCached(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, standardJWKS()...)

	v := newVerifier(t, Config{JWKSURL: srv.jwksURL()})
	if n := srv.fetches.Load(); n != 0 {
		t.Fatalf("New fetched the JWKS %d times, want 0", n)
	}
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims())
	for i := range 3 {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("Verify #%d: %v", i, err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for 3 verifications, want 1", n)
	}
	// HS256 tokens never touch the JWKS.
	both := newVerifier(t, Config{JWKSURL: srv.jwksURL(), Secret: secret})
	if _, err := both.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", claims())); err != nil {
		t.Fatalf("Verify HS256: %v", err)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("HS256 verification fetched the JWKS (%d fetches, want 1)", n)
	}
}

func TestNewSucceedsWhileAuthServerIsDownAndRecovers(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, standardJWKS()...)
	srv.fail.Store(true)

	v := newVerifier(t, Config{JWKSURL: srv.jwksURL(), RefreshUnknownKIDInterval: 100 * time.Millisecond})
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims())
	_, err := v.Verify(t.Context(), tok)
	checkRejected(t, err, tok, "unknown signing key")

	srv.fail.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = v.Verify(t.Context(), tok)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("token still rejected after the JWKS came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCachedKeysStillVerifyWhenJWKSServerIsGone(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, standardJWKS()...)
	v := newVerifier(t, Config{JWKSURL: srv.jwksURL()})
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", claims())
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify before outage: %v", err)
	}

	srv.Close()

	// An unknown kid tries (and fails) a refresh; that must not wipe the cache.
	unknown := sign(t, jwt.SigningMethodEdDSA, k.ed, "rotated-but-unreachable", claims())
	_, err := v.Verify(t.Context(), unknown)
	checkRejected(t, err, unknown, "unknown signing key")

	for _, tok := range []string{tok, sign(t, jwt.SigningMethodES256, k.ec, "ec", claims())} {
		if _, err := v.Verify(t.Context(), tok); err != nil {
			t.Fatalf("cached key rejected during JWKS outage: %v", err)
		}
	}
}

func TestVerifyPicksUpRotatedKeysWithinRateLimit(t *testing.T) {
	k := testKeys()
	edPub := k.ed.Public().(ed25519.PublicKey)
	srv := newJWKSServer(t, okpJWK("key-1", "EdDSA", edPub))
	const interval = 300 * time.Millisecond
	v := newVerifier(t, Config{JWKSURL: srv.jwksURL(), RefreshUnknownKIDInterval: interval})
	token := func(kid string) string { return sign(t, jwt.SigningMethodEdDSA, k.ed, kid, claims()) }
	tok1, tok2, tok3 := token("key-1"), token("key-2"), token("key-3")

	if _, err := v.Verify(t.Context(), tok1); err != nil {
		t.Fatalf("Verify key-1: %v", err)
	}

	// Rotation: the auth server now publishes only key-2.
	srv.serve(t, okpJWK("key-2", "EdDSA", edPub))
	if _, err := v.Verify(t.Context(), tok2); err != nil {
		t.Fatalf("Verify rotated key-2 on the same Verifier: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d after rotation, want 2", n)
	}

	// A second rotation right away is not looked for: the limiter is spent.
	srv.serve(t, okpJWK("key-3", "EdDSA", edPub))
	start := time.Now()
	_, err := v.Verify(t.Context(), tok3)
	checkRejected(t, err, tok3, "unknown signing key")
	if d := time.Since(start); d > interval/2 {
		t.Errorf("rate-limited rejection took %v; it should not wait for the limiter", d)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d while rate limited, want 2", n)
	}

	// Once the interval has passed, key-3 is picked up with one more fetch.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err = v.Verify(t.Context(), tok3); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key-3 never picked up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("fetches = %d after picking up key-3, want 3", n)
	}

	// key-1 was dropped from the JWKS, so it no longer verifies.
	_, err = v.Verify(t.Context(), tok1)
	checkRejected(t, err, tok1, "unknown signing key")
}

func TestUnknownKIDStormCausesBoundedJWKSFetches(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, standardJWKS()...)
	v := newVerifier(t, Config{JWKSURL: srv.jwksURL()}) // default 1 minute interval

	const n = 1000
	tokens := make([]string, n)
	for i := range tokens {
		kid := make([]byte, 12)
		_, _ = rand.Read(kid)
		tokens[i] = sign(t, jwt.SigningMethodEdDSA, k.ed, b64(kid), claims())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var accepted, wrongErr atomic.Int64
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Go(func() {
			_, err := v.Verify(ctx, tok)
			switch {
			case err == nil:
				accepted.Add(1)
			case !errors.Is(err, ErrInvalidToken) || err.Error() != "invalid token: unknown signing key":
				wrongErr.Add(1)
			}
		})
	}
	wg.Wait()

	if a := accepted.Load(); a != 0 {
		t.Fatalf("%d tokens with forged kids accepted", a)
	}
	if w := wrongErr.Load(); w != 0 {
		t.Fatalf("%d tokens rejected for an unexpected reason", w)
	}
	// One lazy initial fetch plus at most one unknown-kid refresh.
	if f := srv.fetches.Load(); f < 1 || f > 2 {
		t.Fatalf("storm of %d unknown kids caused %d JWKS fetches, want 1..2", n, f)
	}
	if ctx.Err() != nil {
		t.Fatal("storm took longer than 5s: rejections are waiting on the rate limiter")
	}
}

func TestVerifyBetterAuthShapedToken(t *testing.T) {
	k := testKeys()
	// Better Auth's JWKS entry: OKP/Ed25519 with alg EdDSA and a random kid.
	srv := newJWKSServer(t, okpJWK("Zx1Hc3pWbTjQm0t9", "EdDSA", k.ed.Public().(ed25519.PublicKey)))
	v := newVerifier(t, Config{JWKSURL: srv.jwksURL(), Issuer: origin, Audience: origin})

	now := time.Now()
	payload := map[string]any{
		// definePayload's default is the user row...
		"id":            "u_8f2k1",
		"name":          "Ada Lovelace",
		"email":         "ada@example.test",
		"emailVerified": true,
		"image":         nil,
		"createdAt":     "2025-01-02T03:04:05.000Z",
		"updatedAt":     "2025-01-02T03:04:05.000Z",
		// ...plus the registered claims; no nbf.
		"iat": now.Unix(),
		"exp": now.Add(15 * time.Minute).Unix(),
		"iss": origin,
		"aud": origin,
		"sub": "u_8f2k1",
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(payload))
	tok.Header = map[string]any{"alg": "EdDSA", "kid": "Zx1Hc3pWbTjQm0t9"} // no typ
	s, err := tok.SignedString(k.ed)
	if err != nil {
		t.Fatal(err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(s, ".")[0])
	if strings.Contains(string(header), "typ") {
		t.Fatalf("fixture header %s has typ", header)
	}

	got, err := v.Verify(t.Context(), s)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := model.Viewer{ID: "u_8f2k1", Email: "ada@example.test", Name: "Ada Lovelace", ExpiresAt: time.Unix(payload["exp"].(int64), 0)}
	if !sameViewer(got, want) {
		t.Fatalf("viewer = %+v, want %+v", got, want)
	}
}

func TestVerifyViewerProfileClaims(t *testing.T) {
	v := newVerifier(t, Config{Secret: secret})
	tests := []struct {
		name string
		mods []claimMod
		want model.Viewer
	}{
		{"email and name present", nil, model.Viewer{ID: "user-1", Email: "ada@example.test", Name: "Ada Lovelace"}},
		{"email and name absent", []claimMod{unset("email"), unset("name")}, model.Viewer{ID: "user-1"}},
		{"email and name not strings", []claimMod{set("email", 42), set("name", map[string]any{"first": "Ada"})}, model.Viewer{ID: "user-1"}},
		{"email null", []claimMod{set("email", nil)}, model.Viewer{ID: "user-1", Name: "Ada Lovelace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claims(tt.mods...)
			got, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", c))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			tt.want.ExpiresAt = expOf(c)
			if !sameViewer(got, tt.want) {
				t.Fatalf("viewer = %+v, want %+v", got, tt.want)
			}
		})
	}
}
