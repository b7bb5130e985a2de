package postgres

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/taskql/server/model"
)

// ptr is testutil.Ptr, which this internal test cannot import: testutil
// imports postgres.
func ptr[T any](v T) *T { return &v }

// worstChanges are changes whose JSON is as long as the task table allows:
// every code point of a full title and description in the form that
// escapes longest, with a user id of 64 such code points.
func worstChanges() map[string]*model.TaskChange {
	at := time.Date(2026, 12, 31, 23, 59, 59, 999999000, time.UTC)
	out := map[string]*model.TaskChange{}
	for name, r := range map[string]string{
		"control characters (\\u00XX)": "\x01",
		"line separators (\\u2028)":    "\u2028",
		"4-byte runes":                 "𝄞",
		"quotes (\\\")":                `"`,
		"HTML characters, unescaped":   "<",
	} {
		out[name] = &model.TaskChange{Kind: model.ChangeDeleted, Task: &model.Task{
			ID:          math.MaxInt64,
			UserID:      strings.Repeat(r, 64),
			Title:       strings.Repeat(r, model.MaxTitleLength),
			Description: ptr(strings.Repeat(r, model.MaxDescriptionLength)),
			Completed:   true,
			CreatedAt:   at,
			UpdatedAt:   at,
		}}
	}
	return out
}

func TestWorstCaseChangeFitsOneNotification(t *testing.T) {
	for name, c := range worstChanges() {
		t.Run(name, func(t *testing.T) {
			payload, err := encodeChange(c)
			if err != nil {
				t.Fatal(err)
			}
			if len(payload) > MaxPayload {
				t.Fatalf("%d bytes, over NOTIFY's limit of %d", len(payload), MaxPayload)
			}
			t.Logf("%d bytes of %d", len(payload), MaxPayload)
			if parts := splitPayload(payload, MaxPayload); len(parts) != 1 || parts[0] != payload {
				t.Fatalf("a payload under the limit was split in %d", len(parts))
			}
			got, err := decodeChange(payload)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip changed the change:\n got %+v\nwant %+v", got.Task, c.Task)
			}
		})
	}
}

func TestChangeRoundTripsThroughJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for _, c := range []*model.TaskChange{
		{Kind: model.ChangeCreated, Task: &model.Task{ID: 1, UserID: "u", Title: "a & b <c>", CreatedAt: at, UpdatedAt: at}},
		{Kind: model.ChangeUpdated, Task: &model.Task{ID: 2, UserID: "u", Title: "t", Description: ptr("line\nbreak"), Completed: true, CreatedAt: at, UpdatedAt: at.Add(time.Microsecond)}},
	} {
		payload, err := encodeChange(c)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(payload, `\u0026`) || strings.HasSuffix(payload, "\n") {
			t.Errorf("payload is not compact: %s", payload)
		}
		got, err := decodeChange(payload)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip: got %+v, want %+v", got.Task, c.Task)
		}
	}
}

func TestDecodeChangeRefusesWhatIsNotAChange(t *testing.T) {
	for _, payload := range []string{
		``, `nope`, `{}`, `[]`,
		`{"kind":"EXPLODED","task":{"id":1,"userId":"u"}}`,
		`{"kind":"CREATED","task":{"id":1}}`,
		`{"kind":"CREATED","task":{"userId":"u"}}`,
	} {
		if _, err := decodeChange(payload); err == nil {
			t.Errorf("decodeChange(%q) succeeded", payload)
		}
	}
}

func TestOversizedChangeIsSplitAndReassembled(t *testing.T) {
	c := worstChanges()["4-byte runes"]
	// A user id past what fits: subjects come from tokens of up to 8 KB.
	c.Task.UserID = strings.Repeat("é", 3000)
	payload, err := encodeChange(c)
	if err != nil {
		t.Fatal(err)
	}
	parts := splitPayload(payload, MaxPayload)
	if len(parts) < 2 {
		t.Fatalf("a payload of %d bytes was not split", len(payload))
	}
	for i, p := range parts {
		if len(p) > MaxPayload || !utf8.ValidString(p) {
			t.Fatalf("chunk %d: %d bytes, valid UTF-8 %v", i, len(p), utf8.ValidString(p))
		}
	}
	// The chunks of an identical payload differ, or PostgreSQL would
	// deliver them once per transaction.
	if again := splitPayload(payload, MaxPayload); again[1] == parts[1] {
		t.Fatal("two splits of one payload have equal chunks")
	}

	var a assembler
	for i, p := range parts {
		whole, err := a.add(p)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if i < len(parts)-1 && whole != "" {
			t.Fatalf("chunk %d of %d completed the payload", i+1, len(parts))
		}
		if i == len(parts)-1 && whole != payload {
			t.Fatalf("reassembled %d bytes, want the %d sent", len(whole), len(payload))
		}
	}
}

func TestAssemblerDropsBrokenSequences(t *testing.T) {
	long := `{"kind":"CREATED","task":{"id":1,"userId":"` + strings.Repeat("x", 300) + `"}}`
	parts := splitPayload(long, 100)
	if len(parts) < 3 {
		t.Fatalf("want at least 3 chunks, got %d", len(parts))
	}
	tests := []struct {
		name string
		feed []string
	}{
		{"a missing middle chunk", []string{parts[0], parts[2]}},
		{"a chunk without its first", parts[1:2]},
		{"a malformed chunk", []string{"#x:one/two:data"}},
		{"a chunk of another payload", []string{parts[0], splitPayload(long, 100)[1]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a assembler
			var failed bool
			for _, p := range tt.feed {
				whole, err := a.add(p)
				if whole != "" {
					t.Fatalf("assembled %q from a broken sequence", whole)
				}
				failed = failed || err != nil
			}
			if !failed {
				t.Fatal("no error for a broken sequence")
			}
			// A whole payload after it goes through.
			if whole, err := a.add(`{"kind":"CREATED"}`); whole != `{"kind":"CREATED"}` || err != nil {
				t.Fatalf("the next whole payload: %q, %v", whole, err)
			}
		})
	}

	t.Run("a whole payload cutting a chunked one short", func(t *testing.T) {
		var a assembler
		a.add(parts[0])
		whole, err := a.add(`{"kind":"CREATED"}`)
		if err == nil || whole != `{"kind":"CREATED"}` {
			t.Fatalf("got %q, %v: want the whole payload and an error for the cut one", whole, err)
		}
	})
}
