// Package ide serves GraphiQL, the interactive GraphQL IDE, entirely from
// the binary: its scripts and styles are embedded (see build.sh), so the IDE
// works with no internet access and the page never contacts another host.
package ide

import (
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// AssetPrefix is the path below which the IDE's files are served.
const AssetPrefix = "/ide/"

// Config is what the page needs to know.
type Config struct {
	// Title is the page title.
	Title string
	// Endpoint is the GraphQL URL, usually "/graphql".
	Endpoint string
	// Headers pre-fill the IDE's headers editor, e.g. a development token.
	Headers map[string]string
	// Query pre-fills the editor.
	Query string
}

var page = template.Must(template.New("ide").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="stylesheet" href="/ide/graphiql.min.css">
<style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
<div id="graphiql" data-endpoint="{{.Endpoint}}" data-headers="{{.Headers}}" data-query="{{.Query}}">Loading…</div>
<script src="/ide/react.production.min.js"></script>
<script src="/ide/react-dom.production.min.js"></script>
<script src="/ide/graphiql.min.js"></script>
<script src="/ide/graphql-ws.min.js"></script>
<script src="/ide/ide.js"></script>
</body>
</html>
`))

// contentSecurityPolicy lets the page load only what this server serves and
// talk only to it. GraphiQL sets inline styles, hence 'unsafe-inline' for
// styles alone.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler returns the IDE: the page at "/" and its files below AssetPrefix.
func Handler(cfg Config) http.Handler {
	var headers string
	if len(cfg.Headers) > 0 {
		b, _ := json.MarshalIndent(cfg.Headers, "", "  ")
		headers = string(b)
	}
	var html strings.Builder
	err := page.Execute(&html, struct{ Title, Endpoint, Headers, Query string }{cfg.Title, cfg.Endpoint, headers, cfg.Query})
	if err != nil {
		panic(err) // the template and its data are ours: this cannot fail
	}
	body := []byte(html.String())

	files, _ := fs.Sub(assets, "assets")
	fileServer := http.StripPrefix(AssetPrefix, http.FileServerFS(files))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(r.URL.Path, AssetPrefix) {
			// The files change only with the binary.
			h.Set("Cache-Control", "public, max-age=3600")
			fileServer.ServeHTTP(w, r)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.Write(body)
	})
}
