package model

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the task table, in Unicode code points.
const (
	MaxTitleLength       = 200
	MaxDescriptionLength = 1000
	// MaxSearchLength bounds a search string (CONTRACT §7). A search
	// compares its pattern with every title and description of the user,
	// and each comparison costs in proportion to the pattern's length: at
	// 1000 characters, one document of 94 aliased searches kept both cores
	// busy for 20 s (issue 10, F3). A title's length is more than anyone
	// types into a search box.
	MaxSearchLength = 200
)

// ParseID parses a task id given in the argument named field. Only a
// canonical positive decimal integer is accepted: "007", "+7", "1e3" and
// "0x10" would otherwise name a task the client did not mean.
func ParseID(field, s string) (int64, error) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, invalid(field, "must be a positive decimal integer")
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, invalid(field, "must be a positive decimal integer")
	}
	return id, nil
}

func cleanTitle(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid("title", "must not be empty")
	}
	if err := checkText("title", s, MaxTitleLength); err != nil {
		return "", err
	}
	return s, nil
}

// cleanDescription trims d and stores an empty description as null.
func cleanDescription(d *string) (*string, error) {
	if d == nil {
		return nil, nil
	}
	s := strings.TrimSpace(*d)
	if s == "" {
		return nil, nil
	}
	if err := checkText("description", s, MaxDescriptionLength); err != nil {
		return nil, err
	}
	return &s, nil
}

// checkText refuses what the databases would refuse or mangle: NUL
// characters (PostgreSQL rejects them in text) and text over max code points.
func checkText(field, s string, max int) error {
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(field, "must not contain NUL characters")
	}
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return invalid(field, "must be at most %d characters, got %d", max, n)
	}
	return nil
}

func sortByID(tasks []*Task) {
	slices.SortFunc(tasks, func(a, b *Task) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}
