package api

import (
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
)

// Incremental delivery of @defer, in the format Apollo Client reads:
// multipart/mixed with the boundary "-" and deferSpec=20220824, as gqlgen's
// MultipartMixed transport writes it. The first part is the initial
// payload with "hasNext"; each later part is
// {"incremental":[…],"hasNext":…}; the closing boundary follows the part
// whose hasNext is false. Every part ends with the boundary line that
// announces the next one (or closes the stream) and is flushed at once, so
// that the client renders it without waiting for the next.
//
// Only serve calls writeIncremental, after every rule of the HTTP surface
// has passed: this is a way of writing an answer, not a transport of its
// own.
const (
	incrementalContentType = `multipart/mixed;boundary="-";deferSpec=20220824`
	partDelimiter          = "---\r\n"
	closeDelimiter         = "-----\r\n"
	partHeader             = "Content-Type: application/json\r\n\r\n"
)

// acceptsMultipart reports whether the client named multipart/mixed in
// Accept, as Apollo Client does for a query with @defer.
func acceptsMultipart(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if media, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && media == "multipart/mixed" {
			return true
		}
	}
	return false
}

// incrementalPayload is a part after the first: the deferred fragments
// that completed, and whether more will follow. Apollo Client wants
// "incremental" to be a list even for one fragment.
type incrementalPayload struct {
	Incremental []*graphql.Response `json:"incremental"`
	HasNext     bool                `json:"hasNext"`
}

// writeIncremental streams the answers of next as the parts of one
// multipart/mixed response until one says it has no next, the stream ends
// or the client goes away. Errors in the parts were presented (masked and
// logged) by the error presenter like every other error.
func writeIncremental(ctx context.Context, w http.ResponseWriter, next graphql.ResponseHandler) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", incrementalContentType)
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, partDelimiter)
	for first := true; ; first = false {
		resp := next(ctx)
		if resp == nil {
			break
		}
		hasNext := resp.HasNext != nil && *resp.HasNext
		var body any = resp
		if !first {
			body = incrementalPayload{Incremental: []*graphql.Response{resp}, HasNext: hasNext}
		}
		b, err := json.Marshal(body)
		if err != nil {
			// Only a marshaler of ours could fail here; the client
			// still gets a well-formed last part.
			b, _ = json.Marshal(map[string]any{
				"errors":  []map[string]any{{"message": internalMessage, "extensions": map[string]any{"code": CodeInternal}}},
				"hasNext": false,
			})
			hasNext = false
		}
		io.WriteString(w, partHeader)
		w.Write(b)
		io.WriteString(w, "\r\n")
		if !hasNext {
			io.WriteString(w, closeDelimiter)
			rc.Flush()
			return
		}
		io.WriteString(w, partDelimiter)
		rc.Flush()
	}
	if ctx.Err() == nil {
		// The executor ended the stream without a last part: close it
		// all the same, so the client does not wait for one.
		io.WriteString(w, partHeader+`{"hasNext":false}`+"\r\n"+closeDelimiter)
	}
	rc.Flush()
}
