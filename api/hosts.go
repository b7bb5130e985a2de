package api

import (
	"fmt"
	"net/http"
	"strings"
)

// hostPolicy is the set of Host header values the server answers
// (ALLOWED_HOSTS): the guard against DNS rebinding. A page on
// rebind.attacker.example whose name is made to resolve to 127.0.0.1 is,
// to the browser, of the same origin as the server it reaches there, and
// may read what it answers: the development IDE with its 30-day token
// (issue 10, F9). The browser still sends the attacker's name as Host,
// which is what this refuses.
type hostPolicy struct {
	any   bool
	hosts []hostPattern
}

// hostPattern is one entry of ALLOWED_HOSTS.
type hostPattern struct {
	name string // lower case, IPv6 without brackets
	port string // "" for any port
	// subdomains: the entry was ".example.com", which also allows
	// example.com itself.
	subdomains bool
}

// newHostPolicy parses allowed, whose entries have passed
// CheckAllowedHost. An empty list, or one holding "*", allows any host.
func newHostPolicy(allowed []string) hostPolicy {
	p := hostPolicy{any: len(allowed) == 0}
	for _, entry := range allowed {
		h, err := parseHostPattern(entry)
		if err != nil {
			continue // config refuses these; a caller of api.New that passes one allows less, not more
		}
		if h.name == "*" {
			p.any = true
		}
		p.hosts = append(p.hosts, h)
	}
	return p
}

// CheckAllowedHost reports whether entry is a valid entry of
// ALLOWED_HOSTS: a host name or IP address with an optional port
// ("api.example.com", "localhost:8080", "[::1]", "[::1]:8080"), a domain
// and its subdomains (".example.com"), or "*" for any.
func CheckAllowedHost(entry string) error {
	_, err := parseHostPattern(entry)
	return err
}

func parseHostPattern(entry string) (hostPattern, error) {
	entry = strings.TrimSpace(entry)
	if entry == "*" {
		return hostPattern{name: "*"}, nil
	}
	var h hostPattern
	if rest, ok := strings.CutPrefix(entry, "."); ok {
		h.subdomains = true
		entry = rest
	}
	name, port, ok := splitHost(entry)
	if !ok || strings.ContainsAny(name, "/@?#*\\ ") || strings.HasPrefix(name, ".") {
		return hostPattern{}, fmt.Errorf("%q is not a host like api.example.com, localhost:8080, [::1] or .example.com", entry)
	}
	h.name, h.port = name, port
	return h, nil
}

// splitHost splits a Host header value, or an ALLOWED_HOSTS entry, into
// its lower-case name (an IPv6 address without brackets, no trailing dot)
// and its port ("" when absent). A bare IPv6 address ("::1") is a name.
func splitHost(s string) (name, port string, ok bool) {
	if rest, found := strings.CutPrefix(s, "["); found {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", false
		}
		name, rest = rest[:end], rest[end+1:]
		if rest != "" {
			if port, found = strings.CutPrefix(rest, ":"); !found {
				return "", "", false
			}
		}
	} else if strings.Count(s, ":") == 1 {
		name, port, _ = strings.Cut(s, ":")
	} else {
		name = s
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", "", false
		}
	}
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	return name, port, name != ""
}

// allows reports whether the server answers requests for host (a Host
// header).
func (p hostPolicy) allows(host string) bool {
	if p.any {
		return true
	}
	name, port, ok := splitHost(host)
	if !ok {
		return false
	}
	for _, h := range p.hosts {
		if h.port != "" && h.port != port {
			continue
		}
		if name == h.name || (h.subdomains && strings.HasSuffix(name, "."+h.name)) {
			return true
		}
	}
	return false
}

// checkHost answers 421 Misdirected Request, before anything else runs,
// to a request whose Host the policy does not allow: the request was meant
// for another server, whatever name resolved to this one. The body is
// plain and short, and echoes nothing of the request.
func checkHost(p hostPolicy, next http.Handler) http.Handler {
	if p.any {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.allows(r.Host) {
			http.Error(w, "misdirected request: this server does not answer for that host name (ALLOWED_HOSTS)", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}
