package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/rs/cors"
)

// originPolicy decides which browser origins may use the API: the one rule
// behind both the CORS headers and the websocket upgrade, so that the two
// cannot drift apart. Browsers send no preflight for a websocket and the
// token travels inside the connection, so a websocket is the way a foreign
// page would use a token it got hold of.
//
// An empty list allows no origin. rs/cors reads an empty AllowedOrigins as
// "*", which is how an unset CORS_ALLOWED_ORIGINS in production answered
// any page with Access-Control-Allow-Origin: * (issue 10, F4); "*" is a
// wildcard only when it is written.
type originPolicy struct {
	any     bool
	origins []string // lower case, without a trailing slash
}

func newOriginPolicy(allowed []string) originPolicy {
	var p originPolicy
	for _, o := range allowed {
		o = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/"))
		switch o {
		case "":
		case "*":
			p.any = true
		default:
			p.origins = append(p.origins, o)
		}
	}
	return p
}

// allows reports whether a page of origin (an Origin header) may call the
// API. Scheme and host compare without case, as browsers send them in
// lower case anyway; the port is part of the origin.
func (p originPolicy) allows(origin string) bool {
	if origin == "" {
		return false
	}
	return p.any || slices.Contains(p.origins, strings.ToLower(origin))
}

// allowsWebsocket reports whether r may become a websocket: it has no
// Origin (a program, not a browser: nothing to protect it from), its
// Origin is the server's own (the IDE at / opens /graphql), or the policy
// allows its Origin.
func (p originPolicy) allowsWebsocket(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return p.allows(origin)
}

// corsOrigins sets the origin rule of CORS options from p. A wildcard is
// given to rs/cors as "*" so that it answers Access-Control-Allow-Origin:
// * (cacheable by any origin, as the operator asked); any other policy
// goes through allows, so that rs/cors never falls back to its own
// reading of an empty list.
func (p originPolicy) corsOrigins(o *cors.Options) {
	if p.any {
		o.AllowedOrigins = []string{"*"}
		return
	}
	o.AllowOriginFunc = p.allows
}
