package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The response media types of GraphQL over HTTP.
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// postTransport serves GraphQL over POST with a JSON body, and nothing
// else: form and multipart bodies are refused before they get here, since a
// browser sends those cross-site without a preflight. It is the only POST
// transport, so every rule of serve holds for every client, the ones that
// accept multipart/mixed (Apollo Client's @defer) included: gqlgen's own
// multipart transport applied none of them (it streamed subscriptions past
// token expiry and echoed bodies it could not decode).
type postTransport struct{}

func (postTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodPost && r.Header.Get("Upgrade") == ""
}

func (postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media := responseMediaType(r)
	var params graphql.RawParams
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	// A body of the wrong shape (an array, a query that is not a string,
	// variables that are not an object) fails to decode into RawParams.
	// The message never quotes the body: it may be anything.
	if err := dec.Decode(&params); err != nil || dec.More() {
		writeErrors(w, media, http.StatusBadRequest, "the body must be one JSON object with a query (batches are not supported)")
		return
	}
	params.Headers = r.Header
	serve(w, r, exec, &params, media)
}

// getTransport serves queries (never mutations) in the URL's query string,
// as urql and persisted-query clients send them.
type getTransport struct{}

func (getTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && r.Header.Get("Upgrade") == ""
}

func (getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media := responseMediaType(r)
	q := r.URL.Query()
	params := graphql.RawParams{
		Query:         q.Get("query"),
		OperationName: q.Get("operationName"),
		Headers:       r.Header,
	}
	for name, dst := range map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if v := q.Get(name); v != "" {
			dec := json.NewDecoder(strings.NewReader(v))
			dec.UseNumber()
			if err := dec.Decode(dst); err != nil {
				writeErrors(w, media, http.StatusBadRequest, name+" must be a JSON object")
				return
			}
		}
	}
	serve(w, r, exec, &params, media)
}

// serve runs one operation. A request that is not a GraphQL request at
// all is 400; documents that cannot run get the status statusFor gives
// them; a document that runs is 200 even when a field fails, since the
// body then holds partial data. Only queries run over GET, subscriptions
// never run over HTTP (the websocket transport enforces token expiry and
// the per-user caps, which a response stream would escape), and @defer is
// answered incrementally to a POST that accepts multipart/mixed.
func serve(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, media string) {
	ctx := r.Context()
	if params.Query == "" && params.Extensions["persistedQuery"] == nil {
		// Without a persisted-query hash the document is all there is.
		writeErrors(w, media, http.StatusBadRequest, "a GraphQL request needs a query")
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: graphql.Now(), End: graphql.Now()}
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		if after, ok := retryAfter(resp.Errors); ok {
			w.Header().Set("Retry-After", after)
		}
		writeResponse(w, media, statusFor(errs, media), resp)
		return
	}
	op := opCtx.Operation
	if op != nil && op.Operation == ast.Subscription {
		writeErrors(w, media, http.StatusBadRequest, "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql, not over "+r.Method)
		return
	}
	if op != nil && r.Method == http.MethodGet && op.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		writeErrors(w, media, http.StatusMethodNotAllowed, "GET requests can only run queries; send "+string(op.Operation)+"s with POST")
		return
	}
	if documentDefers(opCtx.Doc) {
		if r.Method != http.MethodPost || !acceptsMultipart(r) {
			// One JSON answer cannot carry the deferred parts.
			writeErrors(w, media, http.StatusBadRequest, "@defer needs a POST that accepts multipart/mixed")
			return
		}
		responses, ctx := exec.DispatchOperation(ctx, opCtx)
		writeIncremental(ctx, w, responses)
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	writeResponse(w, media, http.StatusOK, responses(ctx))
}

// documentDefers reports whether any operation or fragment of doc has a
// @defer, whatever its arguments: serve answers such an operation
// incrementally, and the fast path leaves it to gqlgen.
func documentDefers(doc *ast.QueryDocument) bool {
	if doc == nil {
		return true
	}
	for _, op := range doc.Operations {
		if setDefers(op.SelectionSet) {
			return true
		}
	}
	for _, fragment := range doc.Fragments {
		if fragment.Directives.ForName("defer") != nil || setDefers(fragment.SelectionSet) {
			return true
		}
	}
	return false
}

func setDefers(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Directives.ForName("defer") != nil || setDefers(sel.SelectionSet) {
				return true
			}
		case *ast.InlineFragment:
			if sel.Directives.ForName("defer") != nil || setDefers(sel.SelectionSet) {
				return true
			}
		case *ast.FragmentSpread:
			// The fragment's own selection is looked at with the
			// document's fragments.
			if sel.Directives.ForName("defer") != nil {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// statusFor is the status of a well-formed GraphQL request whose document
// could not run: it failed to parse, to validate, to coerce its variables,
// or to stay within the limits, or its persisted-query hash is unknown.
// GraphQL over HTTP gives those 200 under application/json, which legacy
// clients (and every Apollo version retrying a persisted query) expect,
// and 400 under application/graphql-response+json, whose clients rely on a
// response without data never being 2xx. A refusal of the rate limiter is
// 429 under either type, so that clients and proxies back off.
func statusFor(errs gqlerror.List, media string) int {
	for _, err := range errs {
		if err.Extensions["code"] == CodeRateLimited {
			return http.StatusTooManyRequests
		}
	}
	if media == mediaGraphQLResponse {
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// retryAfter returns the Retry-After header of a response refused by the
// rate limiter: the seconds its error says to wait.
func retryAfter(errs gqlerror.List) (string, bool) {
	for _, err := range errs {
		if n, ok := err.Extensions["retryAfter"].(int); ok && err.Extensions["code"] == CodeRateLimited {
			return strconv.Itoa(n), true
		}
	}
	return "", false
}

// responseMediaType picks the response media type from the Accept header:
// the GraphQL response type when the client names it before plain JSON.
// Only the two type names matter, so each element's name is compared as
// it is, its parameters cut off: every request of every transport asks
// (twice on /graphql), and mime.ParseMediaType allocated a map per
// element for parameters nobody reads.
func responseMediaType(r *http.Request) string {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		media, _, _ := strings.Cut(part, ";")
		switch media = strings.TrimSpace(media); {
		case strings.EqualFold(media, mediaGraphQLResponse):
			return mediaGraphQLResponse
		case strings.EqualFold(media, mediaJSON):
			return mediaJSON
		}
	}
	return mediaJSON
}

// requestError is the body of a request error: one refused before
// execution (by the HTTP layer, or a document that does not parse or
// validate). GraphQL over HTTP says it has no "data" key at all, which is
// how clients tell it from an executed operation whose root came out null
// ("data": null); graphql.Response always writes the key.
type requestError struct {
	Errors     gqlerror.List  `json:"errors"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// writeResponse writes resp with status. A response without Data never
// executed (gqlgen sets Data, at least to null, whenever it runs an
// operation) and is written as a requestError.
func writeResponse(w http.ResponseWriter, media string, status int, resp *graphql.Response) {
	parts, err := encodeResponse(resp)
	if err != nil {
		// Only a marshaler of ours could fail here; the client still gets
		// a well-formed answer.
		status = http.StatusInternalServerError
		var buf bytes.Buffer
		json.NewEncoder(&buf).Encode(requestError{Errors: gqlerror.List{{
			Message:    internalMessage,
			Extensions: map[string]any{"code": CodeInternal},
		}}})
		parts = [][]byte{buf.Bytes()}
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := w.Header()
	h.Set("Content-Type", media+"; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(status)
	for _, p := range parts {
		w.Write(p)
	}
}

// encodeResponse returns resp as json.Encoder would write it, byte for
// byte, in parts to write one after the other; a response without data as
// a requestError. The data, the bulk of an answer, is written as it is
// (HTML-escaped first when it holds what the encoder escapes): gqlgen wrote
// it as JSON, and passing it through encoding/json as a RawMessage scans,
// compacts and copies every byte again, a tenth of the CPU of a page of
// tasks in the profile (bench/README.md).
func encodeResponse(resp *graphql.Response) ([][]byte, error) {
	if resp.Data == nil || resp.Label != "" || resp.Path != nil || resp.HasNext != nil {
		// Request errors, and parts of an incremental answer (which
		// writeIncremental writes itself, so they do not come here).
		var body any = resp
		if resp.Data == nil {
			body = requestError{Errors: resp.Errors, Extensions: resp.Extensions}
		}
		var buf bytes.Buffer
		err := json.NewEncoder(&buf).Encode(body)
		return [][]byte{buf.Bytes()}, err
	}
	head := []byte(`{"data":`)
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			return nil, err
		}
		head = append(append(append([]byte(`{"errors":`), errs...), ','), `"data":`...)
	}
	data := []byte(resp.Data)
	// The encoder escapes <, > and & and the line and paragraph
	// separators U+2028 and U+2029 (whose UTF-8 encodings start with 0xE2).
	if bytes.ContainsAny(data, "<>&") || bytes.IndexByte(data, 0xE2) >= 0 {
		var buf bytes.Buffer
		json.HTMLEscape(&buf, data)
		data = buf.Bytes()
	}
	tail := []byte("}\n")
	if len(resp.Extensions) > 0 {
		ext, err := json.Marshal(resp.Extensions)
		if err != nil {
			return nil, err
		}
		tail = append(append([]byte(`,"extensions":`), ext...), "}\n"...)
	}
	return [][]byte{head, data, tail}, nil
}

// writeErrors answers with one error and no data entry: a request error.
func writeErrors(w http.ResponseWriter, media string, status int, msg string, ext ...map[string]any) {
	e := &gqlerror.Error{Message: msg}
	if len(ext) > 0 {
		e.Extensions = ext[0]
	}
	writeResponse(w, media, status, &graphql.Response{Errors: gqlerror.List{e}})
}
