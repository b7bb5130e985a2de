package api

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestEncodeResponseMatchesEncodingJSON pins the hand-written encoding of
// answers to what json.Encoder writes for them, byte for byte: clients
// and caches see no difference from the encoder it replaced.
func TestEncodeResponseMatchesEncodingJSON(t *testing.T) {
	hasNext := true
	tests := []struct {
		name string
		resp *graphql.Response
	}{
		{"data", &graphql.Response{Data: json.RawMessage(`{"tasks":{"nodes":[{"id":"1","title":"Buy milk","description":null}]}}`)}},
		{"null data", &graphql.Response{Data: json.RawMessage(`null`)}},
		{"characters the encoder escapes", &graphql.Response{Data: json.RawMessage("{\"title\":\"<b>Tom & Jerry</b> \u2028 \u2029\"}")}},
		{"escaped characters already", &graphql.Response{Data: json.RawMessage(`{"title":"\u003cb\u003e \"quoted\" \\ back"}`)}},
		{"data and errors", &graphql.Response{
			Data:   json.RawMessage(`{"task":null}`),
			Errors: gqlerror.List{{Message: "task <not> found", Extensions: map[string]any{"code": "NOT_FOUND"}}},
		}},
		{"extensions", &graphql.Response{Data: json.RawMessage(`{"me":{"id":"u"}}`), Extensions: map[string]any{"cost": 3, "note": "a&b"}}},
		{"request error", &graphql.Response{Errors: gqlerror.List{{Message: "bad <document>"}}}},
		{"request error with extensions", &graphql.Response{Errors: gqlerror.List{{Message: "x"}}, Extensions: map[string]any{"k": "v"}}},
		{"incremental delivery", &graphql.Response{Data: json.RawMessage(`{"a":1}`), HasNext: &hasNext, Label: "l"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want bytes.Buffer
			var body any = tt.resp
			if tt.resp.Data == nil {
				body = requestError{Errors: tt.resp.Errors, Extensions: tt.resp.Extensions}
			}
			if err := json.NewEncoder(&want).Encode(body); err != nil {
				t.Fatalf("json.Encoder: %v", err)
			}
			parts, err := encodeResponse(tt.resp)
			if err != nil {
				t.Fatalf("encodeResponse: %v", err)
			}
			if got := bytes.Join(parts, nil); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("encodeResponse wrote\n%s\nwant (json.Encoder)\n%s", got, want.Bytes())
			}
		})
	}
}

// BenchmarkEncodeResponse compares the encoding of a page of tasks with
// json.Encoder's, in one run.
func BenchmarkEncodeResponse(b *testing.B) {
	var page bytes.Buffer
	page.WriteString(`{"tasks":{"nodes":[`)
	for i := range 20 {
		if i > 0 {
			page.WriteByte(',')
		}
		page.WriteString(`{"id":"12345","title":"Renew the car insurance before Friday","description":"Compare at least three quotes before deciding. Attach the signed form and keep a copy.","completed":true,"createdAt":"2026-11-26T12:00:00.123456Z","updatedAt":"2026-11-26T12:00:00.123456Z"}`)
	}
	page.WriteString(`]}}`)
	resp := &graphql.Response{Data: page.Bytes()}
	b.Run("encodeResponse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encodeResponse(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf bytes.Buffer
			if err := json.NewEncoder(&buf).Encode(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestTheCostExtensionEncodesAsTheMapItReplaced pins the bytes clients
// read in extensions.cost: the struct's fields are in the order
// encoding/json sorted the keys of the map it replaced.
func TestTheCostExtensionEncodesAsTheMapItReplaced(t *testing.T) {
	t.Parallel()
	for _, c := range []*operationCost{
		{requested: 59, limit: 5000},
		{requested: 59, limit: 5000, budget: &budgetState{remaining: 49941, capacity: 50000, refillPerSecond: 10000}},
		{requested: 1, limit: 5000, budget: &budgetState{remaining: 0, capacity: 50000, refillPerSecond: 0.5}},
	} {
		asMap := map[string]any{"requested": c.requested, "limit": c.limit}
		if b := c.budget; b != nil {
			asMap["budget"] = map[string]any{"remaining": b.remaining, "capacity": b.capacity, "refillPerSecond": b.refillPerSecond}
		}
		want, _ := json.Marshal(asMap)
		got, err := json.Marshal(c.extension())
		if err != nil || string(got) != string(want) {
			t.Errorf("extensions.cost = %s, %v; want %s", got, err, want)
		}
	}
}
