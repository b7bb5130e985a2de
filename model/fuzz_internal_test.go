package model

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets of the model's input handling: whatever a client sends,
// these return a value or an EINVALID *Error naming the field, and never
// panic. Seeds are in testdata/fuzz; .ci/run fuzzes each for a bounded time.

// wantInvalidInput fails unless err is an EINVALID *Error for field.
func wantInvalidInput(t *testing.T, err error, field string) {
	t.Helper()
	var ie *Error
	if !errors.As(err, &ie) || ie.Code != EINVALID || ie.Field != field {
		t.Fatalf("error %v (%T), want an EINVALID *Error for %q", err, err, field)
	}
}

// FuzzDecodeCursor feeds arbitrary strings to the cursor decoder, as after
// or before of each order. An accepted cursor holds a positive id and a
// value of the order's type, and the cursor of any task decodes back to
// that task's sort value and id.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("eyJmIjoiYyIsInYiOiIyMDI1LTAxLTAyVDAzOjA0OjA1LjEyMzQ1NloiLCJpIjo0Mn0", "title", int64(1))
	f.Add("", "", int64(0))
	f.Fuzz(func(t *testing.T, s, title string, id int64) {
		for _, field := range []TaskOrderField{OrderByCreatedAt, OrderByUpdatedAt, OrderByTitle} {
			c, err := decodeCursor("after", s, field)
			if err != nil {
				wantInvalidInput(t, err, "after")
				continue
			}
			if c.ID <= 0 {
				t.Fatalf("cursor %q accepted with id %d", s, c.ID)
			}
			if (c.time == nil) != (field == OrderByTitle) {
				t.Fatalf("cursor %q for %s: time %v", s, field, c.time)
			}
			if c.time == nil && (!utf8.ValidString(c.Value) || strings.IndexByte(c.Value, 0) >= 0) {
				t.Fatalf("cursor %q for %s holds %q", s, field, c.Value)
			}
		}

		// Round trip: any task's cursor decodes to its own values.
		if id <= 0 || checkText("title", title, MaxTitleLength) != nil {
			return
		}
		tm := time.Unix(0, id%(1<<50)*1000).UTC()
		task := &Task{ID: id, Title: title, CreatedAt: tm, UpdatedAt: tm}
		for _, field := range []TaskOrderField{OrderByCreatedAt, OrderByUpdatedAt, OrderByTitle} {
			s := encodeCursor(TaskOrder{Field: field, Direction: Asc}, task)
			c, err := decodeCursor("before", s, field)
			if err != nil || c.ID != id {
				t.Fatalf("cursor of task %d by %s: %+v, err %v", id, field, c, err)
			}
			if field == OrderByTitle && c.Value != title {
				t.Fatalf("title cursor decodes to %q, want %q", c.Value, title)
			}
			if field != OrderByTitle && !c.time.Equal(tm) {
				t.Fatalf("time cursor decodes to %v, want %v", c.time, tm)
			}
		}
	})
}

// FuzzParseID: only a canonical positive decimal is an id, and it prints
// back as exactly what was sent.
func FuzzParseID(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID("id", s)
		if err != nil {
			wantInvalidInput(t, err, "id")
			return
		}
		if id <= 0 || strconv.FormatInt(id, 10) != s {
			t.Fatalf("ParseID(%q) = %d", s, id)
		}
	})
}

// FuzzCleanText: a title or description is stored trimmed, valid UTF-8,
// without NUL and within its length; an empty description is null; and
// cleaning is idempotent.
func FuzzCleanText(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		title, err := cleanTitle(s)
		if err != nil {
			wantInvalidInput(t, err, "title")
		} else {
			checkClean(t, title, MaxTitleLength)
			if title == "" {
				t.Fatalf("cleanTitle(%q) accepted an empty title", s)
			}
			if again, err := cleanTitle(title); err != nil || again != title {
				t.Fatalf("cleanTitle is not idempotent on %q: %q, %v", title, again, err)
			}
		}

		desc, err := cleanDescription(&s)
		if err != nil {
			wantInvalidInput(t, err, "description")
			return
		}
		if desc == nil {
			if strings.TrimSpace(s) != "" {
				t.Fatalf("cleanDescription(%q) = null", s)
			}
			return
		}
		checkClean(t, *desc, MaxDescriptionLength)
	})
}

func checkClean(t *testing.T, s string, max int) {
	t.Helper()
	if s != strings.TrimSpace(s) || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 || utf8.RuneCountInString(s) > max {
		t.Fatalf("cleaned text %q is not trimmed, valid, NUL-free and at most %d characters", s, max)
	}
}
