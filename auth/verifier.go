// Package auth turns bearer tokens into a model.Viewer.
//
// Tokens come from Better Auth's jwt plugin (EdDSA, verified against its JWKS)
// or, for development and service-to-service use, are HS256 tokens signed with
// a shared secret. Everything that can go wrong with a token is reported as
// ErrInvalidToken so callers have exactly one thing to map to "401".
package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/taskql/server/model"
)

// MaxTokenLength bounds the work an unauthenticated caller can make us do:
// header and claims are JSON-decoded before the signature is checked, so
// anything longer is refused before parsing. Real tokens are well under 2 KiB.
const MaxTokenLength = 8192

// ErrInvalidToken is wrapped by every verification failure so callers can
// answer 401 with errors.Is, without caring which check failed.
var ErrInvalidToken = errors.New("invalid token")

const (
	// minSecretLength follows RFC 7518 §3.2: an HS256 key must be at least as
	// long as the hash output, or it is the weakest link.
	minSecretLength = 32

	defaultLeeway            = 30 * time.Second
	defaultHTTPTimeout       = 10 * time.Second
	defaultRefreshUnknownKID = time.Minute
	// jwksRefreshInterval makes removed (revoked) keys disappear from the
	// cache even if no unknown kid ever shows up to trigger a refresh.
	jwksRefreshInterval = time.Hour
	// minRSABits rejects keys that are factorable by a determined attacker.
	minRSABits = 2048
)

// jwksAlgs lists the asymmetric algorithms a JWKS key may be pinned to.
// Anything else (HS*, none, RS384, ...) is refused before a key is even looked
// up. A function rather than a var so no caller can mutate a shared slice.
func jwksAlgs() []string { return []string{"EdDSA", "RS256", "PS256", "ES256"} }

const hmacAlg = "HS256"

// Config says how tokens are verified. Zero values are useful: no JWKS URL
// means no JWKS, no secret means no HS256, and zero durations and a nil client
// mean sensible defaults.
type Config struct {
	// JWKSURL is the JWKS endpoint, e.g. "${BETTER_AUTH_URL}/api/auth/jwks".
	// Empty disables JWKS verification.
	JWKSURL string
	// Issuer, when non-empty, must equal the token's iss claim.
	Issuer string
	// Audience, when non-empty, must be one of the token's aud values.
	Audience string
	// Secret enables HS256 verification. Empty disables HS256; a non-empty
	// secret shorter than 32 bytes is refused by New.
	Secret []byte
	// Leeway is the clock skew tolerated on exp, nbf and iat; 0 means 30s.
	Leeway time.Duration
	// HTTPClient is used for JWKS fetches; nil means a client with a 10s
	// timeout, so a hanging auth server cannot hang requests forever.
	HTTPClient *http.Client
	// RefreshUnknownKIDInterval is the minimum time between JWKS refreshes
	// triggered by tokens carrying an unknown kid (burst of 1); 0 means one
	// minute. It is what keeps forged kids from turning into a request flood
	// against the auth server, while still picking up rotated keys.
	RefreshUnknownKIDInterval time.Duration
}

// Verifier checks tokens and extracts the viewer. It is safe for concurrent
// use; create one per process and share it.
type Verifier struct {
	parser *jwt.Parser
	secret []byte
	// algs is every algorithm the parser accepts; kept to tell "algorithm not
	// allowed" apart from "bad signature" when reporting failures.
	algs []string

	// jwks is nil when JWKS verification is disabled. Otherwise it yields the
	// key storage, creating it (and doing the first fetch) on first use so the
	// server boots even when the auth server is down.
	jwks func() (jwkset.Storage, error)
	// refreshLimiter is the same limiter keyfunc uses for unknown-kid
	// refreshes; Verify peeks at it to reject instead of queueing on it.
	refreshLimiter *rate.Limiter
}

// New validates cfg and returns a Verifier. It does no network I/O: the JWKS
// is fetched when the first token that needs it arrives. ctx bounds the
// background goroutine keyfunc starts (after that first fetch) to refresh the
// JWKS periodically; cancel it on shutdown.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.JWKSURL == "" && len(cfg.Secret) == 0 {
		return nil, errors.New("auth: no verification method configured: set a JWKS URL or an HS256 secret")
	}
	if len(cfg.Secret) > 0 && len(cfg.Secret) < minSecretLength {
		return nil, fmt.Errorf("auth: HS256 secret must be at least %d bytes, got %d", minSecretLength, len(cfg.Secret))
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("auth: leeway must not be negative")
	}
	if cfg.RefreshUnknownKIDInterval < 0 {
		return nil, errors.New("auth: unknown-kid refresh interval must not be negative")
	}

	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = defaultLeeway
	}

	v := &Verifier{}
	if len(cfg.Secret) > 0 {
		// Copy so a caller reusing its buffer cannot change our key later.
		v.secret = slices.Clone(cfg.Secret)
		v.algs = append(v.algs, hmacAlg)
	}
	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			return nil, err
		}
		v.algs = append(v.algs, jwksAlgs()...)
		v.setupJWKS(ctx, cfg)
	}

	opts := []jwt.ParserOption{
		// The per-key pin in keyfunc is the real algorithm check; this list
		// rejects none/unknown algorithms before any key lookup happens.
		jwt.WithValidMethods(v.algs),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// checkJWKSURL catches typos at boot rather than on the first request.
func checkJWKSURL(raw string) error {
	u, err := url.ParseRequestURI(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("auth: JWKS URL must be an absolute http(s) URL")
	}
	return nil
}

func (v *Verifier) setupJWKS(ctx context.Context, cfg Config) {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultHTTPTimeout}
	}
	// jwkset bounds fetches by a context timeout too; match the client's so a
	// client without a timeout still cannot block a request forever.
	fetchTimeout := client.Timeout
	if fetchTimeout <= 0 {
		fetchTimeout = defaultHTTPTimeout
	}
	interval := cfg.RefreshUnknownKIDInterval
	if interval == 0 {
		interval = defaultRefreshUnknownKID
	}
	v.refreshLimiter = rate.NewLimiter(rate.Every(interval), 1)

	jwksURL := cfg.JWKSURL
	// keyfunc fetches synchronously when its storage is built, so building
	// it is deferred to the first token that needs a JWKS key.
	v.jwks = sync.OnceValues(func() (jwkset.Storage, error) {
		noErrorOnFirstFetch := true // an unreachable auth server must not make the storage unusable
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
			Client:                    client,
			HTTPTimeout:               fetchTimeout,
			NoErrorReturnFirstHTTPReq: &noErrorOnFirstFetch,
			RateLimitWaitMax:          fetchTimeout,
			RefreshInterval:           jwksRefreshInterval,
			RefreshUnknownKID:         v.refreshLimiter,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					slog.WarnContext(ctx, "auth: JWKS fetch failed; previously fetched keys stay in use", "url", u, "error", err)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		// keyfunc's own Keyfunc is not used: it only pins the algorithm when
		// the JWK carries "alg", and falls back to trying every key when the
		// token has no kid. We read its storage and pin ourselves.
		return kf.Storage(), nil
	})
}

// reason is a failure description that is safe to show: it never contains
// token text, key material or the secret.
type reason string

func (r reason) Error() string { return string(r) }

const (
	reasonEmpty           reason = "empty"
	reasonTooLong         reason = "too long"
	reasonMalformed       reason = "malformed"
	reasonAlgNotAllowed   reason = "algorithm not allowed"
	reasonAlgMismatch     reason = "algorithm does not match key"
	reasonBadSignature    reason = "bad signature"
	reasonMissingKID      reason = "missing key id"
	reasonUnknownKey      reason = "unknown signing key"
	reasonUnusableKey     reason = "signing key not usable"
	reasonKeysUnavailable reason = "signing keys unavailable"
	reasonCritHeader      reason = "unsupported critical header"
	reasonExpired         reason = "expired"
	reasonNotYetValid     reason = "not valid yet"
	reasonIssuedInFuture  reason = "issued in the future"
	reasonWrongIssuer     reason = "wrong issuer"
	reasonWrongAudience   reason = "wrong audience"
	reasonMissingClaim    reason = "missing required claim"
	reasonMissingSubject  reason = "missing subject"
	reasonInvalid         reason = "invalid"
)

func invalid(r reason) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, r)
}

// Verify checks token's signature and claims and returns the viewer it
// describes. Every failure wraps ErrInvalidToken. ctx bounds a JWKS fetch the
// token may trigger.
func (v *Verifier) Verify(ctx context.Context, token string) (model.Viewer, error) {
	if token == "" {
		return model.Viewer{}, invalid(reasonEmpty)
	}
	if len(token) > MaxTokenLength {
		return model.Viewer{}, invalid(reasonTooLong)
	}
	var c tokenClaims
	parsed, err := v.parser.ParseWithClaims(token, &c, v.keyfunc(ctx))
	if err != nil {
		return model.Viewer{}, invalid(v.classify(parsed, err))
	}
	viewer := model.Viewer{
		ID:    c.Subject,
		Email: stringClaim(c.Email),
		Name:  stringClaim(c.Name),
	}
	// exp is required by the parser, so it is always there.
	if c.ExpiresAt != nil {
		viewer.ExpiresAt = c.ExpiresAt.Time
	}
	return viewer, nil
}

// classify maps jwt's detailed (and token-quoting) errors to a short reason.
// Order matters when claims validation reports several problems at once.
func (v *Verifier) classify(parsed *jwt.Token, err error) reason {
	var r reason
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return reasonMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		if errors.As(err, &r) {
			return r
		}
		// alg missing, or one jwt does not implement.
		return reasonAlgNotAllowed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// jwt reports a method outside WithValidMethods as a bad signature.
		if parsed == nil || parsed.Method == nil || !slices.Contains(v.algs, parsed.Method.Alg()) {
			return reasonAlgNotAllowed
		}
		return reasonBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return reasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return reasonNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reasonIssuedInFuture
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return reasonWrongIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return reasonWrongAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return reasonMissingClaim
	case errors.As(err, &r):
		return r
	}
	return reasonInvalid
}

// keyfunc picks the verification key and enforces that the token's alg is the
// one that key is pinned to. Returning the HMAC secret only for HS256, and
// JWKS keys only for their pinned asymmetric alg, is what makes algorithm
// confusion (e.g. HS256 keyed with an RSA public key) impossible.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		// We implement no JWS extensions, and RFC 7515 §4.1.11 says a
		// recipient that doesn't understand "crit" must reject.
		if _, ok := t.Header["crit"]; ok {
			return nil, reasonCritHeader
		}
		alg := t.Method.Alg()
		if alg == hmacAlg {
			// Unreachable without a secret (WithValidMethods), kept so the
			// secret can never be nil-keyed by a future change.
			if len(v.secret) == 0 {
				return nil, reasonAlgNotAllowed
			}
			return v.secret, nil
		}
		if v.jwks == nil || !slices.Contains(jwksAlgs(), alg) {
			return nil, reasonAlgNotAllowed
		}
		// Better Auth always sets kid. Guessing a key for kid-less tokens
		// would only widen what an attacker can try, so we don't.
		kid, _ := t.Header[jwkset.HeaderKID].(string)
		if kid == "" {
			return nil, reasonMissingKID
		}
		jwk, err := v.lookupKey(ctx, kid)
		if err != nil {
			return nil, err
		}
		key, pinned, err := verificationKey(jwk)
		if err != nil {
			return nil, err
		}
		if alg != pinned {
			return nil, reasonAlgMismatch
		}
		return key, nil
	}
}

// lookupKey finds kid in the cached JWKS, refreshing at most once per
// RefreshUnknownKIDInterval when it is missing (which is how rotated keys
// are picked up).
func (v *Verifier) lookupKey(ctx context.Context, kid string) (jwkset.JWK, error) {
	store, err := v.jwks()
	if err != nil {
		return jwkset.JWK{}, reasonKeysUnavailable
	}
	// Read the cache without jwkset's refresh-on-miss so that the limiter
	// check below happens before anything can block.
	cached, err := store.KeyReadAll(ctx)
	if err == nil {
		for _, k := range cached {
			if k.Marshal().KID == kid {
				return k, nil
			}
		}
	}
	// jwkset waits on the limiter (up to RateLimitWaitMax) instead of failing
	// fast; with forged kids that would park requests. Peek, and only go
	// through jwkset's refresh when a token is available right now.
	if v.refreshLimiter.Tokens() < 1 {
		return jwkset.JWK{}, reasonUnknownKey
	}
	k, err := store.KeyRead(ctx, kid)
	if err != nil {
		return jwkset.JWK{}, reasonUnknownKey
	}
	return k, nil
}

// verificationKey returns the public key of jwk and the single algorithm it
// may verify: the JWK's "alg" if present (and sensible for the key type),
// otherwise the one its key type implies.
func verificationKey(jwk jwkset.JWK) (any, string, error) {
	m := jwk.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, "", reasonUnusableKey
	}
	if len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return nil, "", reasonUnusableKey
	}

	key := jwk.Key()
	// jwkset keeps private parts if a misconfigured JWKS publishes them; we
	// only ever verify, so use the public half.
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public()
	}

	var implied string
	var allowed []string
	switch k := key.(type) {
	case ed25519.PublicKey:
		implied, allowed = "EdDSA", []string{"EdDSA"}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, "", reasonUnusableKey
		}
		implied, allowed = "RS256", []string{"RS256", "PS256"}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", reasonUnusableKey
		}
		implied, allowed = "ES256", []string{"ES256"}
	default:
		// oct keys in particular: a JWKS must never hand out HMAC keys.
		return nil, "", reasonUnusableKey
	}

	alg := m.ALG.String()
	if alg == "" {
		return key, implied, nil
	}
	if !slices.Contains(allowed, alg) {
		return nil, "", reasonUnusableKey
	}
	return key, alg, nil
}
