package model_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/taskql/server/model"
	"github.com/taskql/server/testutil"
)

// seedForPaging creates tasks for user with many ties in every sort field
// (five titles, six creation times, four update times, in no relation to
// id order), leaves some with the database's own times (microseconds on
// PostgreSQL), gives another user tasks with the same values, and returns
// user's rows as the table holds them.
func seedForPaging(t *testing.T, db *bun.DB, s *model.Tasks, user string, n int) []*model.Task {
	t.Helper()
	ctx := testutil.AsUser(user)
	titles := []string{"alpha", "bravo", "charlie", "delta", "echo"}
	base := time.Date(2026, 1, 2, 3, 4, 5, 123_000_000, time.UTC)
	for i := range n {
		task := mustCreate(t, s, ctx, model.CreateTaskInput{
			Title: titles[(i*3)%len(titles)], Description: testutil.Ptr(fmt.Sprintf("task %d", i)), Completed: testutil.Ptr(i%3 == 0),
		})
		if i%8 == 7 {
			continue // keep the database's times
		}
		created := base.Add(time.Duration((i*7)%6) * time.Second)
		updated := base.Add(time.Duration((i*5)%4)*time.Second + 500*time.Millisecond)
		setTimes(t, db, task.ID, created, updated)
	}
	other := testutil.AsUser(user + "-neighbour")
	for i := range 4 {
		task := mustCreate(t, s, other, model.CreateTaskInput{Title: titles[i], Completed: testutil.Ptr(true)})
		setTimes(t, db, task.ID, base, base)
	}
	return rawRowsOf(t, db, user)
}

// sortedBy sorts tasks in Go the way a list in order o must be sorted: by
// the field, then by id, both in o's direction (nil is CREATED_AT DESC).
func sortedBy(tasks []*model.Task, o *model.TaskOrder) []*model.Task {
	order := model.TaskOrder{Field: model.OrderByCreatedAt, Direction: model.Desc}
	if o != nil {
		order = *o
	}
	out := slices.Clone(tasks)
	slices.SortFunc(out, func(a, b *model.Task) int {
		var c int
		switch order.Field {
		case model.OrderByCreatedAt:
			c = a.CreatedAt.Compare(b.CreatedAt)
		case model.OrderByUpdatedAt:
			c = a.UpdatedAt.Compare(b.UpdatedAt)
		case model.OrderByTitle:
			c = strings.Compare(a.Title, b.Title)
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if order.Direction == model.Desc {
			c = -c
		}
		return c
	})
	return out
}

var allOrders = []*model.TaskOrder{
	nil,
	{Field: model.OrderByCreatedAt, Direction: model.Asc},
	{Field: model.OrderByCreatedAt, Direction: model.Desc},
	{Field: model.OrderByUpdatedAt, Direction: model.Asc},
	{Field: model.OrderByUpdatedAt, Direction: model.Desc},
	{Field: model.OrderByTitle, Direction: model.Asc},
	{Field: model.OrderByTitle, Direction: model.Desc},
}

func orderName(o *model.TaskOrder) string {
	if o == nil {
		return "default"
	}
	return string(o.Field) + "_" + string(o.Direction)
}

// checkPage checks what holds for every page: at most size nodes, one edge
// per node with a cursor, and start and end cursors that are those of the
// first and last edge (nil on an empty page).
func checkPage(t *testing.T, p *model.TaskPage, size int) {
	t.Helper()
	if len(p.Nodes) > size {
		t.Fatalf("page has %d nodes, asked for %d", len(p.Nodes), size)
	}
	edges := p.Edges()
	if len(edges) != len(p.Nodes) {
		t.Fatalf("page has %d edges for %d nodes", len(edges), len(p.Nodes))
	}
	for i, e := range edges {
		if e.Node != p.Nodes[i] || e.Cursor == "" {
			t.Fatalf("edge %d: node %v, cursor %q; want node %v and a cursor", i, e.Node, e.Cursor, p.Nodes[i])
		}
	}
	pi := p.PageInfo
	if len(edges) == 0 {
		if pi.StartCursor() != nil || pi.EndCursor() != nil {
			t.Fatalf("empty page has start cursor %v, end cursor %v; want nil", pi.StartCursor(), pi.EndCursor())
		}
		return
	}
	if pi.StartCursor() == nil || *pi.StartCursor() != edges[0].Cursor {
		t.Fatalf("startCursor %v is not the first edge's cursor %q", pi.StartCursor(), edges[0].Cursor)
	}
	if pi.EndCursor() == nil || *pi.EndCursor() != edges[len(edges)-1].Cursor {
		t.Fatalf("endCursor %v is not the last edge's cursor %q", pi.EndCursor(), edges[len(edges)-1].Cursor)
	}
}

func wantPages(total, size int) int { return max(1, (total+size-1)/size) }

// walkForward reads a whole list with first=size and after, checking each
// page's PageInfo, and returns the concatenated nodes.
func walkForward(t *testing.T, s *model.Tasks, ctx context.Context, f model.TaskFilter, o *model.TaskOrder, size, total int) []*model.Task {
	t.Helper()
	var out []*model.Task
	var after *string
	for page := 0; ; page++ {
		if page > total+1 {
			t.Fatalf("forward walk with first=%d does not end", size)
		}
		p, err := s.List(ctx, f, o, model.PageArgs{First: testutil.Ptr(size), After: after})
		if err != nil {
			t.Fatalf("forward page %d: %v", page, err)
		}
		checkPage(t, p, size)
		if p.PageInfo.HasPreviousPage != (page > 0) {
			t.Fatalf("forward page %d: hasPreviousPage = %v", page, p.PageInfo.HasPreviousPage)
		}
		out = append(out, p.Nodes...)
		if !p.PageInfo.HasNextPage {
			if got := wantPages(total, size); page+1 != got {
				t.Fatalf("forward walk with first=%d took %d pages, want %d", size, page+1, got)
			}
			if p.PageInfo.EndCursor() != nil {
				// Nothing lies past the last page.
				rest, err := s.List(ctx, f, o, model.PageArgs{First: testutil.Ptr(size), After: p.PageInfo.EndCursor()})
				if err != nil || len(rest.Nodes) != 0 || rest.PageInfo.HasNextPage {
					t.Fatalf("after the last page: %v nodes, hasNextPage %v, %v", ids(rest.Nodes), rest.PageInfo.HasNextPage, err)
				}
			}
			return out
		}
		if len(p.Nodes) != size {
			t.Fatalf("forward page %d has %d nodes and hasNextPage; want a full page of %d", page, len(p.Nodes), size)
		}
		after = p.PageInfo.EndCursor()
	}
}

// walkBackward reads a whole list from its end with last=size and before.
func walkBackward(t *testing.T, s *model.Tasks, ctx context.Context, f model.TaskFilter, o *model.TaskOrder, size, total int) []*model.Task {
	t.Helper()
	var out []*model.Task
	var before *string
	for page := 0; ; page++ {
		if page > total+1 {
			t.Fatalf("backward walk with last=%d does not end", size)
		}
		p, err := s.List(ctx, f, o, model.PageArgs{Last: testutil.Ptr(size), Before: before})
		if err != nil {
			t.Fatalf("backward page %d: %v", page, err)
		}
		checkPage(t, p, size)
		if p.PageInfo.HasNextPage != (page > 0) {
			t.Fatalf("backward page %d: hasNextPage = %v", page, p.PageInfo.HasNextPage)
		}
		out = append(slices.Clone(p.Nodes), out...)
		if !p.PageInfo.HasPreviousPage {
			if got := wantPages(total, size); page+1 != got {
				t.Fatalf("backward walk with last=%d took %d pages, want %d", size, page+1, got)
			}
			return out
		}
		if len(p.Nodes) != size {
			t.Fatalf("backward page %d has %d nodes and hasPreviousPage; want a full page of %d", page, len(p.Nodes), size)
		}
		before = p.PageInfo.StartCursor()
	}
}

func TestPaginationWalksEveryOrderInBothDirectionsWithoutGapsOrDuplicates(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		rows := seedForPaging(t, db, s, "alice", 31)
		for _, o := range allOrders {
			want := ids(sortedBy(rows, o))
			t.Run(orderName(o), func(t *testing.T) {
				for _, size := range []int{1, 3, 7, 31, 100} {
					if got := ids(walkForward(t, s, ctx, model.TaskFilter{}, o, size, len(rows))); !reflect.DeepEqual(got, want) {
						t.Fatalf("forward walk with first=%d:\n got  %v\n want %v", size, got, want)
					}
					if got := ids(walkBackward(t, s, ctx, model.TaskFilter{}, o, size, len(rows))); !reflect.DeepEqual(got, want) {
						t.Fatalf("backward walk with last=%d:\n got  %v\n want %v", size, got, want)
					}
				}
			})
		}
		// nil is exactly CREATED_AT DESC: the same pages and the same cursors.
		def, err := s.List(ctx, model.TaskFilter{}, nil, model.PageArgs{First: testutil.Ptr(5)})
		if err != nil {
			t.Fatal(err)
		}
		explicit, err := s.List(ctx, model.TaskFilter{}, &model.TaskOrder{Field: model.OrderByCreatedAt, Direction: model.Desc}, model.PageArgs{First: testutil.Ptr(5)})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(def.Edges(), explicit.Edges()) {
			t.Fatal("the default order differs from CREATED_AT DESC")
		}
	})
}

func TestPaginationDefaultsAndBoundedWindows(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		rows := seedForPaging(t, db, s, "alice", 26)
		order := &model.TaskOrder{Field: model.OrderByTitle, Direction: model.Asc}
		want := sortedBy(rows, order)
		full, err := s.List(ctx, model.TaskFilter{}, order, model.PageArgs{First: testutil.Ptr(100)})
		if err != nil {
			t.Fatal(err)
		}
		cursor := func(i int) *string { return testutil.Ptr(full.Edges()[i].Cursor) }

		tests := []struct {
			name               string
			args               model.PageArgs
			from, to           int // want want[from:to]
			hasNext, hasPrev   bool
			checkHasNextAndPrv bool
		}{
			{"no arguments: the first 20", model.PageArgs{}, 0, model.DefaultPageSize, true, false, true},
			{"after only: the next 20", model.PageArgs{After: cursor(2)}, 3, 23, true, true, true},
			{"before only: the 20 before it", model.PageArgs{Before: cursor(24)}, 4, 24, true, true, true},
			{"before near the start: what there is", model.PageArgs{Before: cursor(5)}, 0, 5, true, false, true},
			{"first with after and before", model.PageArgs{First: testutil.Ptr(100), After: cursor(3), Before: cursor(10)}, 4, 10, false, true, false},
			{"first with after and before, cut by first", model.PageArgs{First: testutil.Ptr(2), After: cursor(3), Before: cursor(10)}, 4, 6, true, true, false},
			{"last with after and before", model.PageArgs{Last: testutil.Ptr(100), After: cursor(3), Before: cursor(10)}, 4, 10, true, false, false},
			{"last with after and before, cut by last", model.PageArgs{Last: testutil.Ptr(2), After: cursor(3), Before: cursor(10)}, 8, 10, true, true, false},
			{"last with after only", model.PageArgs{Last: testutil.Ptr(3), After: cursor(3)}, 23, 26, false, true, false},
			{"first: 100 returns all", model.PageArgs{First: testutil.Ptr(100)}, 0, 26, false, false, true},
			{"last: 100 returns all", model.PageArgs{Last: testutil.Ptr(100)}, 0, 26, false, false, true},
			{"first: 0 returns no nodes", model.PageArgs{First: testutil.Ptr(0)}, 0, 0, true, false, false},
			{"first: 0 after a cursor returns no nodes", model.PageArgs{First: testutil.Ptr(0), After: cursor(3)}, 0, 0, true, true, false},
			{"last: 0 returns no nodes", model.PageArgs{Last: testutil.Ptr(0)}, 0, 0, false, true, false},
			{"after the last task: nothing", model.PageArgs{After: cursor(25)}, 0, 0, false, true, true},
			{"before the first task: nothing", model.PageArgs{Last: testutil.Ptr(5), Before: cursor(0)}, 0, 0, true, false, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := s.List(ctx, model.TaskFilter{}, order, tt.args)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				size := model.DefaultPageSize
				if tt.args.First != nil {
					size = *tt.args.First
				} else if tt.args.Last != nil {
					size = *tt.args.Last
				}
				checkPage(t, p, size)
				if got, w := ids(p.Nodes), ids(want[tt.from:tt.to]); !reflect.DeepEqual(got, w) {
					t.Fatalf("nodes %v, want %v", got, w)
				}
				if tt.checkHasNextAndPrv && (p.PageInfo.HasNextPage != tt.hasNext || p.PageInfo.HasPreviousPage != tt.hasPrev) {
					t.Fatalf("hasNextPage %v, hasPreviousPage %v; want %v, %v",
						p.PageInfo.HasNextPage, p.PageInfo.HasPreviousPage, tt.hasNext, tt.hasPrev)
				}
			})
		}
	})
}

func TestCursorsStayValidWhenRowsBeforeThemChange(t *testing.T) {
	t.Parallel()
	scenarios := []struct {
		order    *model.TaskOrder
		newTitle string // sorts before the cursor in this order
	}{
		{nil, "zulu"}, // new tasks are the newest: first in CREATED_AT DESC
		{&model.TaskOrder{Field: model.OrderByTitle, Direction: model.Asc}, "aardvark"},
		{&model.TaskOrder{Field: model.OrderByUpdatedAt, Direction: model.Desc}, "zulu"},
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		for i, sc := range scenarios {
			user := fmt.Sprintf("user%d", i)
			ctx := testutil.AsUser(user)
			want := sortedBy(seedForPaging(t, db, s, user, 20), sc.order)
			p1, err := s.List(ctx, model.TaskFilter{}, sc.order, model.PageArgs{First: testutil.Ptr(5)})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(p1.Nodes), ids(want[:5])) {
				t.Fatalf("%s: first page %v, want %v", orderName(sc.order), ids(p1.Nodes), ids(want[:5]))
			}
			end, start := p1.PageInfo.EndCursor(), p1.PageInfo.StartCursor()

			// Delete rows before the cursor, including the cursor's own task,
			// and insert rows that sort before it.
			for _, gone := range []*model.Task{want[1], want[4]} {
				if _, err := s.Delete(ctx, idOf(gone)); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				mustCreate(t, s, ctx, model.CreateTaskInput{Title: sc.newTitle})
			}

			p2, err := s.List(ctx, model.TaskFilter{}, sc.order, model.PageArgs{First: testutil.Ptr(5), After: end})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(p2.Nodes), ids(want[5:10])) {
				t.Fatalf("%s: page after the old cursor %v, want %v", orderName(sc.order), ids(p2.Nodes), ids(want[5:10]))
			}
			back, err := s.List(ctx, model.TaskFilter{}, sc.order, model.PageArgs{Last: testutil.Ptr(2), Before: end})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(back.Nodes), ids(want[2:4])) {
				t.Fatalf("%s: page before the deleted cursor task %v, want %v", orderName(sc.order), ids(back.Nodes), ids(want[2:4]))
			}
			// The first page's start cursor still points after the new rows.
			after, err := s.List(ctx, model.TaskFilter{}, sc.order, model.PageArgs{First: testutil.Ptr(3), After: start})
			if err != nil {
				t.Fatal(err)
			}
			if w := []int64{want[2].ID, want[3].ID, want[5].ID}; !reflect.DeepEqual(ids(after.Nodes), w) {
				t.Fatalf("%s: page after the old start cursor %v, want %v", orderName(sc.order), ids(after.Nodes), w)
			}
		}
	})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestMalformedAndForeignCursorsAreInvalidInput(t *testing.T) {
	t.Parallel()
	created := &model.TaskOrder{Field: model.OrderByCreatedAt, Direction: model.Asc}
	updated := &model.TaskOrder{Field: model.OrderByUpdatedAt, Direction: model.Asc}
	title := &model.TaskOrder{Field: model.OrderByTitle, Direction: model.Asc}
	malformed := []struct {
		name   string
		cursor string
		order  *model.TaskOrder
	}{
		{"empty", "", nil},
		{"not JSON", "abc", nil},
		{"not base64", "!!!!", nil},
		{"standard base64 padding", "eyJmIjoiYyJ9==", nil},
		{"base64 of garbage", b64("\x00\xff\xfegarbage"), nil},
		{"base64 of a JSON array", b64(`[1,2,3]`), nil},
		{"base64 of JSON null", b64(`null`), nil},
		{"empty object", b64(`{}`), nil},
		{"wrong types", b64(`{"f":1,"v":2,"i":"3"}`), nil},
		{"id as a string", b64(`{"f":"c","v":"2026-01-02T03:04:05Z","i":"1"}`), nil},
		{"id zero", b64(`{"f":"c","v":"2026-01-02T03:04:05Z","i":0}`), nil},
		{"negative id", b64(`{"f":"c","v":"2026-01-02T03:04:05Z","i":-4}`), nil},
		{"fractional id", b64(`{"f":"c","v":"2026-01-02T03:04:05Z","i":1.5}`), nil},
		{"missing id", b64(`{"f":"c","v":"2026-01-02T03:04:05Z"}`), nil},
		{"not a time", b64(`{"f":"c","v":"yesterday","i":1}`), created},
		{"time without zone", b64(`{"f":"u","v":"2026-01-02T03:04:05","i":1}`), updated},
		{"trailing bytes", b64(`{"f":"c","v":"2026-01-02T03:04:05Z","i":1}x`), nil},
		{"NUL in a title cursor", b64(`{"f":"t","v":"a\u0000b","i":1}`), title},
		{"overlong title cursor", b64(`{"f":"t","v":"` + strings.Repeat("a", 201) + `","i":1}`), title},
		{"oversized", b64(`{"f":"t","v":"` + strings.Repeat("a", 5000) + `","i":1}`), title},
		{"unknown field code", b64(`{"f":"x","v":"a","i":1}`), title},
		// A cursor made for another orderBy is refused, not misread.
		{"CREATED_AT cursor under TITLE", b64(`{"f":"c","v":"2026-01-02T03:04:05Z","i":1}`), title},
		{"CREATED_AT cursor under UPDATED_AT", b64(`{"f":"c","v":"2026-01-02T03:04:05Z","i":1}`), updated},
		{"TITLE cursor under CREATED_AT", b64(`{"f":"t","v":"alpha","i":1}`), created},
		{"UPDATED_AT cursor under the default order", b64(`{"f":"u","v":"2026-01-02T03:04:05Z","i":1}`), nil},
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		seedForPaging(t, db, s, "alice", 3)
		for _, tt := range malformed {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.List(ctx, model.TaskFilter{}, tt.order, model.PageArgs{After: &tt.cursor})
				wantInvalid(t, err, "after")
				_, err = s.List(ctx, model.TaskFilter{}, tt.order, model.PageArgs{Last: testutil.Ptr(2), Before: &tt.cursor})
				wantInvalid(t, err, "before")
			})
		}

		// Real cursors taken from one order are refused by every other field.
		for _, from := range allOrders[1:] {
			p, err := s.List(ctx, model.TaskFilter{}, from, model.PageArgs{First: testutil.Ptr(1)})
			if err != nil || p.PageInfo.EndCursor() == nil {
				t.Fatalf("List: %v", err)
			}
			for _, to := range allOrders {
				field := model.OrderByCreatedAt
				if to != nil {
					field = to.Field
				}
				_, err := s.List(ctx, model.TaskFilter{}, to, model.PageArgs{After: p.PageInfo.EndCursor()})
				_, errBefore := s.List(ctx, model.TaskFilter{}, to, model.PageArgs{Before: p.PageInfo.EndCursor()})
				if field == from.Field {
					if err != nil || errBefore != nil {
						t.Fatalf("cursor of %s under %s: %v, %v", orderName(from), orderName(to), err, errBefore)
					}
					continue
				}
				wantInvalid(t, err, "after")
				wantInvalid(t, errBefore, "before")
			}
		}
	})
}

func TestPageSizesOutsideZeroToHundredAreInvalidInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  model.PageArgs
		field string // "" means accepted; "first|last" means either
	}{
		{"first -1", model.PageArgs{First: testutil.Ptr(-1)}, "first"},
		{"first 101", model.PageArgs{First: testutil.Ptr(101)}, "first"},
		{"first huge", model.PageArgs{First: testutil.Ptr(1 << 40)}, "first"},
		{"last -1", model.PageArgs{Last: testutil.Ptr(-1)}, "last"},
		{"last 101", model.PageArgs{Last: testutil.Ptr(101)}, "last"},
		{"first with last", model.PageArgs{First: testutil.Ptr(1), Last: testutil.Ptr(1)}, "first|last"},
		{"first 0", model.PageArgs{First: testutil.Ptr(0)}, ""},
		{"first 100", model.PageArgs{First: testutil.Ptr(100)}, ""},
		{"last 0", model.PageArgs{Last: testutil.Ptr(0)}, ""},
		{"last 100", model.PageArgs{Last: testutil.Ptr(100)}, ""},
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		mustCreate(t, s, ctx, model.CreateTaskInput{Title: "one"})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := s.List(ctx, model.TaskFilter{}, nil, tt.args)
				switch tt.field {
				case "":
					if err != nil {
						t.Fatalf("List: %v", err)
					}
					if wantN := min(1, *cmp.Or(tt.args.First, tt.args.Last)); len(p.Nodes) != wantN {
						t.Fatalf("%d nodes, want %d", len(p.Nodes), wantN)
					}
				case "first|last":
					var ie *model.Error
					if !errors.As(err, &ie) || ie.Code != model.EINVALID || (ie.Field != "first" && ie.Field != "last") {
						t.Fatalf("error = %v, want an EINVALID error on first or last", err)
					}
				default:
					wantInvalid(t, err, tt.field)
				}
			})
		}
	})
}

func TestUnknownOrdersAreInvalidInput(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		for _, o := range []model.TaskOrder{
			{Field: "NAME", Direction: model.Asc},
			{Field: "", Direction: model.Asc},
			{Field: model.OrderByTitle, Direction: "UP"},
			{Field: model.OrderByTitle, Direction: ""},
			{Field: "title; DROP TABLE task", Direction: model.Asc},
		} {
			_, err := s.List(ctx, model.TaskFilter{}, &o, model.PageArgs{})
			wantInvalid(t, err, "orderBy")
		}
	})
}

func TestOrderEnumsRoundTripThroughGraphQL(t *testing.T) {
	t.Parallel()
	for _, f := range []model.TaskOrderField{model.OrderByCreatedAt, model.OrderByUpdatedAt, model.OrderByTitle} {
		var b bytes.Buffer
		f.MarshalGQL(&b)
		var got model.TaskOrderField
		if b.String() != `"`+string(f)+`"` || got.UnmarshalGQL(string(f)) != nil || got != f {
			t.Errorf("TaskOrderField %s: marshals to %s, unmarshals to %q", f, b.String(), got)
		}
	}
	for _, d := range []model.OrderDirection{model.Asc, model.Desc} {
		var b bytes.Buffer
		d.MarshalGQL(&b)
		var got model.OrderDirection
		if b.String() != `"`+string(d)+`"` || got.UnmarshalGQL(string(d)) != nil || got != d {
			t.Errorf("OrderDirection %s: marshals to %s, unmarshals to %q", d, b.String(), got)
		}
	}
	for _, bad := range []any{"NAME", "title", "", 1, nil} {
		var f model.TaskOrderField
		if f.UnmarshalGQL(bad) == nil {
			t.Errorf("TaskOrderField accepted %#v", bad)
		}
		var d model.OrderDirection
		if d.UnmarshalGQL(bad) == nil {
			t.Errorf("OrderDirection accepted %#v", bad)
		}
	}
}

// asciiContains is the search rule: a substring, ignoring the case of
// ASCII letters.
func asciiContains(s, sub string) bool {
	lower := func(s string) string {
		return strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, s)
	}
	return strings.Contains(lower(s), lower(sub))
}

func TestFiltersMatchCompletionAndLiteralCaseInsensitiveSubstrings(t *testing.T) {
	t.Parallel()
	items := []struct {
		title, desc string
		completed   bool
	}{
		{"Buy 100% juice", "", false},
		{"1000 reasons", "", true},
		{"a_c", "", false},
		{"abc", "", true},
		{"x!y", "", false},
		{"xy", "", false},
		{`back\slash`, "", true},
		{"backslash", "", false},
		{"Milk", "", false},
		{"shopping", "oat MILK and bread", true},
		{"MiLkShake", "", true},
		{"nothing", "100 percent", false},
		{"percent sign", "50%off", false},
		{"under", "snake_case", true},
		{"escape", `a!%b \_c`, false},
		{"plain", "", false},
	}
	searches := []string{
		"", "100%", "1000", "a_c", "_", "%", "!", "x!y", "!y", `\`, `back\s`, `\_`, `!%`, `%%`, `_c`,
		"milk", "MILK", "mIlK", "oat milk", "percent", "OFF", "zzz", "e", " ",
	}
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		for _, it := range items {
			mustCreate(t, s, ctx, model.CreateTaskInput{Title: it.title, Description: testutil.Ptr(it.desc), Completed: testutil.Ptr(it.completed)})
		}
		mustCreate(t, s, testutil.AsUser("bob"), model.CreateTaskInput{Title: "milk 100% a_c x!y back\\slash"})
		rows := rawRowsOf(t, db, "alice")

		for _, search := range searches {
			for _, completed := range []*bool{nil, testutil.Ptr(true), testutil.Ptr(false)} {
				f := model.TaskFilter{Search: testutil.Ptr(search), Completed: completed}
				var want []*model.Task
				for _, r := range rows {
					desc := ""
					if r.Description != nil {
						desc = *r.Description
					}
					if (asciiContains(r.Title, search) || asciiContains(desc, search)) &&
						(completed == nil || r.Completed == *completed) {
						want = append(want, r)
					}
				}
				want = sortedBy(want, nil)
				name := fmt.Sprintf("search %q completed %v", search, fmtBool(completed))
				got := walkForward(t, s, ctx, f, nil, 3, len(want))
				if !reflect.DeepEqual(ids(got), ids(want)) {
					t.Errorf("%s: got %v, want %v", name, titles(got), titles(want))
				}
				n, err := s.Count(ctx, f)
				if err != nil || n != len(want) {
					t.Errorf("%s: Count = %d, %v; the walk returned %d", name, n, err, len(got))
				}
			}
		}
		// Pinned literal matches, independent of the oracle above.
		for search, want := range map[string][]string{
			"100%": {"Buy 100% juice"},
			"a_c":  {"a_c"},
			"x!y":  {"x!y"},
			`\`:    {"escape", `back\slash`},
			"%":    {"Buy 100% juice", "escape", "percent sign"},
		} {
			got := titles(listAll(t, s, ctx, model.TaskFilter{Search: testutil.Ptr(search)}))
			slices.Sort(got)
			slices.Sort(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("search %q found %q, want %q", search, got, want)
			}
		}
	})
}

func fmtBool(b *bool) string {
	if b == nil {
		return "nil"
	}
	return fmt.Sprint(*b)
}

func titles(tasks []*model.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.Title
	}
	return out
}

func TestSearchRefusesNULAndOverlongText(t *testing.T) {
	t.Parallel()
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		s := newTasks(t, db)
		ctx := testutil.AsUser("alice")
		for _, bad := range []string{"a\x00", "\x00", strings.Repeat("a", model.MaxSearchLength+1), "\xff"} {
			_, err := s.List(ctx, model.TaskFilter{Search: testutil.Ptr(bad)}, nil, model.PageArgs{})
			wantInvalid(t, err, "filter.search")
			_, err = s.Count(ctx, model.TaskFilter{Search: testutil.Ptr(bad)})
			wantInvalid(t, err, "filter.search")
		}
		p, err := s.List(ctx, model.TaskFilter{Search: testutil.Ptr(strings.Repeat("é", model.MaxSearchLength))}, nil, model.PageArgs{})
		if err != nil || len(p.Nodes) != 0 {
			t.Fatalf("a search of %d code points: %v, %v", model.MaxSearchLength, p, err)
		}
		if p.Filter.Search == nil || *p.Filter.Search != strings.Repeat("é", model.MaxSearchLength) {
			t.Fatal("the page does not carry its filter")
		}
	})
}

// TestListReadsEveryColumnAsTheTableHoldsIt pins the page's scanning
// (on PostgreSQL, texts sliced from one string per page): every task of
// a page equals its row as Bun reads it, for NULL, empty and non-ASCII
// descriptions and titles, next to other users' rows.
func TestListReadsEveryColumnAsTheTableHoldsIt(t *testing.T) {
	testutil.ForEachDB(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		at := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.UTC)
		descs := []*string{nil, testutil.Ptr(""), testutil.Ptr("Ünïcödé — ✓"), nil, testutil.Ptr("plain")}
		var rows []*model.Task
		for i, d := range descs {
			for _, user := range []string{"reader", "someone-else"} {
				rows = append(rows, &model.Task{UserID: user, Title: fmt.Sprintf("Tâche %d %s", i, user), Description: d,
					Completed: i%2 == 0, CreatedAt: at.Add(time.Duration(i) * time.Second), UpdatedAt: at.Add(time.Hour)})
			}
		}
		if _, err := db.NewInsert().Model(&rows).ExcludeColumn("id").Exec(ctx); err != nil {
			t.Fatal(err)
		}
		want := rawRowsOf(t, db, "reader")
		slices.Reverse(want) // newest first
		p, err := newTasks(t, db).List(testutil.AsUser("reader"), model.TaskFilter{}, nil, model.PageArgs{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Nodes) != len(want) {
			t.Fatalf("%d tasks, want %d", len(p.Nodes), len(want))
		}
		for i, got := range p.Nodes {
			w := want[i]
			if got.ID != w.ID || got.UserID != w.UserID || got.Title != w.Title || got.Completed != w.Completed ||
				!got.CreatedAt.Equal(w.CreatedAt) || !got.UpdatedAt.Equal(w.UpdatedAt) ||
				(got.Description == nil) != (w.Description == nil) || (got.Description != nil && *got.Description != *w.Description) {
				t.Errorf("task %d: got %+v (description %v), want %+v (description %v)", i, got, deref(got.Description), w, deref(w.Description))
			}
		}
	})
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
