package model

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/uptrace/bun"
)

// Page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// TaskOrderField is the column a task list is sorted by.
type TaskOrderField string

// The fields a task list can be sorted by.
const (
	OrderByCreatedAt TaskOrderField = "CREATED_AT"
	OrderByUpdatedAt TaskOrderField = "UPDATED_AT"
	OrderByTitle     TaskOrderField = "TITLE"
)

// column returns the task column f sorts by, and the short code that names
// f inside cursors.
func (f TaskOrderField) column() (name, code string, ok bool) {
	switch f {
	case OrderByCreatedAt:
		return "created_at", "c", true
	case OrderByUpdatedAt:
		return "updated_at", "u", true
	case OrderByTitle:
		return "title", "t", true
	}
	return "", "", false
}

// UnmarshalGQL implements graphql.Unmarshaler.
func (f *TaskOrderField) UnmarshalGQL(v any) error {
	s, _ := v.(string)
	*f = TaskOrderField(s)
	if _, _, ok := f.column(); !ok {
		return invalid("orderBy.field", "%q is not a TaskOrderField", s)
	}
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (f TaskOrderField) MarshalGQL(w io.Writer) { io.WriteString(w, strconv.Quote(string(f))) }

// OrderDirection is ascending or descending.
type OrderDirection string

// The two directions.
const (
	Asc  OrderDirection = "ASC"
	Desc OrderDirection = "DESC"
)

// UnmarshalGQL implements graphql.Unmarshaler.
func (d *OrderDirection) UnmarshalGQL(v any) error {
	s, _ := v.(string)
	*d = OrderDirection(s)
	if *d != Asc && *d != Desc {
		return invalid("orderBy.direction", "%q is not an OrderDirection", s)
	}
	return nil
}

// MarshalGQL implements graphql.Marshaler.
func (d OrderDirection) MarshalGQL(w io.Writer) { io.WriteString(w, strconv.Quote(string(d))) }

func (d OrderDirection) reverse() OrderDirection {
	if d == Asc {
		return Desc
	}
	return Asc
}

// TaskOrder sorts a task list; ties are broken by id in the same direction.
type TaskOrder struct {
	Field     TaskOrderField
	Direction OrderDirection
}

// TaskFilter restricts a task list; nil fields do not restrict it.
type TaskFilter struct {
	Completed *bool
	// Search is a case-insensitive substring of the title or description.
	Search *string
}

// PageArgs are Relay's pagination arguments.
type PageArgs struct {
	First, Last   *int
	After, Before *string
}

// TaskPage is one page of a task list.
type TaskPage struct {
	Nodes    []*Task
	PageInfo PageInfo
	// Filter is the validated filter the page was read with, for counting
	// all matching tasks when a client asks.
	Filter TaskFilter

	order TaskOrder
}

// TaskEdge is a task with the cursor that points at it.
type TaskEdge struct {
	Cursor string
	Node   *Task
}

// PageInfo tells a client whether there is more to read either way, and
// where its page starts and ends.
type PageInfo struct {
	HasNextPage     bool
	HasPreviousPage bool

	// order, first and last are what the start and end cursors are made
	// of: they are encoded only if asked for, since most reads of a page
	// select no cursor (bench/README.md's R).
	order       TaskOrder
	first, last *Task
}

// StartCursor is the cursor of the page's first task; nil for an empty
// page.
func (p *PageInfo) StartCursor() *string { return p.cursor(p.first) }

// EndCursor is the cursor of the page's last task; nil for an empty page.
func (p *PageInfo) EndCursor() *string { return p.cursor(p.last) }

func (p *PageInfo) cursor(t *Task) *string {
	if t == nil {
		return nil
	}
	c := encodeCursor(p.order, t)
	return &c
}

// Edges returns the page's tasks with their cursors.
func (p *TaskPage) Edges() []*TaskEdge {
	edges := make([]*TaskEdge, len(p.Nodes))
	for i, t := range p.Nodes {
		edges[i] = &TaskEdge{Cursor: encodeCursor(p.order, t), Node: t}
	}
	return edges
}

// List returns one page of the viewer's tasks matching filter, sorted by
// order (nil means CREATED_AT DESC). Pages are read by keyset, never OFFSET:
// a cursor holds the sort value and id of its task, so it stays valid when
// tasks before it are added or removed.
func (s *Tasks) List(ctx context.Context, filter TaskFilter, order *TaskOrder, page PageArgs) (*TaskPage, error) {
	o, err := s.owned(ctx)
	if err != nil {
		return nil, err
	}
	ord := TaskOrder{Field: OrderByCreatedAt, Direction: Desc}
	if order != nil {
		ord = *order
	}
	col, _, ok := ord.Field.column()
	if !ok || (ord.Direction != Asc && ord.Direction != Desc) {
		return nil, invalid("orderBy", "unknown order")
	}
	if err := validateFilter(filter); err != nil {
		return nil, err
	}
	limit, backward, err := pageSize(page)
	if err != nil {
		return nil, err
	}

	b := &o.b
	// The best way to read a page depends on how many tasks the user has.
	b.planPerCall = true
	q := applyFilter(o.selectTasks(), filter, b)
	// after and before bound the range on either side; which one is "greater"
	// depends on the direction of the sort.
	for _, bound := range []struct {
		field   string
		cursor  *string
		greater bool
	}{
		{"after", page.After, ord.Direction == Asc},
		{"before", page.Before, ord.Direction == Desc},
	} {
		if bound.cursor == nil {
			continue
		}
		c, err := decodeCursor(bound.field, *bound.cursor, ord.Field)
		if err != nil {
			return nil, err
		}
		op := "<"
		if bound.greater {
			op = ">"
		}
		var value bun.Safe
		if c.time != nil {
			value = b.time(*c.time)
		} else {
			value = b.typed(c.Value, "text")
		}
		q = q.Where("(?, id) "+op+" (?, ?)", bun.Ident(col), value, b.id(c.ID))
	}
	dir := ord.Direction
	if backward {
		// Read backward from the end, then restore the normal order.
		dir = dir.reverse()
	}
	q = q.ColumnExpr(taskColumns).
		OrderExpr("? "+string(dir)+", id "+string(dir), bun.Ident(col)).
		Limit(int64(limit) + 1)
	tasks, err := o.readPage(ctx, q, limit+1)
	if err != nil {
		return nil, fmt.Errorf("select tasks: %w", err)
	}

	more := len(tasks) > limit
	if more {
		tasks = tasks[:limit]
	}
	p := &TaskPage{Nodes: tasks, Filter: filter, order: ord}
	if backward {
		slices.Reverse(tasks)
		p.PageInfo.HasPreviousPage = more
		p.PageInfo.HasNextPage = page.Before != nil
	} else {
		p.PageInfo.HasNextPage = more
		p.PageInfo.HasPreviousPage = page.After != nil
	}
	p.PageInfo.order = ord
	if len(tasks) > 0 {
		p.PageInfo.first, p.PageInfo.last = tasks[0], tasks[len(tasks)-1]
	}
	return p, nil
}

// Count returns how many of the viewer's tasks match filter.
func (s *Tasks) Count(ctx context.Context, filter TaskFilter) (int, error) {
	o, err := s.owned(ctx)
	if err != nil {
		return 0, err
	}
	if err := validateFilter(filter); err != nil {
		return 0, err
	}
	q := o.selectTasks().ColumnExpr("count(*)")
	var n int
	if err := o.sendRow(ctx, applyFilter(q, filter, &o.b), &n); err != nil {
		return 0, fmt.Errorf("count tasks: %w", err)
	}
	return n, nil
}

// pageSize returns how many tasks a page holds and whether it is read
// backward (last/before) rather than forward (first/after).
func pageSize(p PageArgs) (limit int, backward bool, err error) {
	if p.First != nil && p.Last != nil {
		return 0, false, invalid("last", "cannot be combined with first")
	}
	for _, n := range []struct {
		field string
		v     *int
	}{{"first", p.First}, {"last", p.Last}} {
		if n.v != nil && (*n.v < 0 || *n.v > MaxPageSize) {
			return 0, false, invalid(n.field, "must be between 0 and %d", MaxPageSize)
		}
	}
	switch {
	case p.First != nil:
		return *p.First, false, nil
	case p.Last != nil:
		return *p.Last, true, nil
	case p.Before != nil && p.After == nil:
		return DefaultPageSize, true, nil
	}
	return DefaultPageSize, false, nil
}

func validateFilter(f TaskFilter) error {
	if f.Search == nil {
		return nil
	}
	// The field is named by its path from the argument, as orderBy.field
	// is: "search" alone would not say which input holds it.
	return checkText("filter.search", *f.Search, MaxSearchLength)
}

func applyFilter(q *bun.SelectQuery, f TaskFilter, b *binds) *bun.SelectQuery {
	if f.Completed != nil {
		q = q.Where("completed = ?", b.add(*f.Completed))
	}
	if f.Search != nil && *f.Search != "" {
		// A substring search rather than LIKE '%…%': LIKE matches the
		// pattern character by character from every position, which a
		// long search over long texts turns into seconds of CPU, while
		// instr and strpos compare bytes; and nothing needs escaping.
		s := b.add(*f.Search)
		q = q.Where("(?(lower(title), lower(?)) > 0 OR ?(lower(description), lower(?)) > 0)",
			sqlPosition{}, s, sqlPosition{}, s)
	}
	return q
}

// cursor is what a cursor holds, before encoding: the code of the sort
// field, the task's value of that field, and its id.
type cursor struct {
	Field string `json:"f"`
	Value string `json:"v"`
	ID    int64  `json:"i"`

	// time is Value parsed, for a cursor of a time field.
	time *time.Time
}

func encodeCursor(o TaskOrder, t *Task) string {
	_, code, _ := o.Field.column()
	c := cursor{Field: code, ID: t.ID}
	switch o.Field {
	case OrderByCreatedAt:
		c.Value = t.CreatedAt.UTC().Format(time.RFC3339Nano)
	case OrderByUpdatedAt:
		c.Value = t.UpdatedAt.UTC().Format(time.RFC3339Nano)
	default:
		c.Value = t.Title
	}
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns what the cursor s given in the argument named field
// holds; it must have been made for the sort field f.
func decodeCursor(field, s string, f TaskOrderField) (*cursor, error) {
	bad := invalid(field, "malformed cursor")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) > 4096 {
		return nil, bad
	}
	var c cursor
	if err := json.Unmarshal(raw, &c); err != nil || c.ID <= 0 {
		return nil, bad
	}
	if _, code, _ := f.column(); c.Field != code {
		return nil, invalid(field, "cursor was made for another orderBy")
	}
	if f == OrderByTitle {
		if err := checkText(field, c.Value, MaxTitleLength); err != nil {
			return nil, bad
		}
		return &c, nil
	}
	tm, err := time.Parse(time.RFC3339Nano, c.Value)
	if err != nil {
		return nil, bad
	}
	c.time = &tm
	return &c, nil
}
