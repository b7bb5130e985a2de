package api

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// selectionBounds refuses, before gqlparser validates it, a document with
// more fields than validation can check in a few milliseconds.
//
// The parser is linear and bounded by the token limit, but validation is
// not: its overlapping-fields rule compares the fields of a selection set
// pairwise, fragments expanded, and the fields of same-named fields'
// selections merged (a: x { … } a: x { … } compares both sets as one), so
// 10,000 __typename took seconds. This pass parses the document (only when
// it is not in the query cache, where validated documents are) and walks
// it as that rule does, with both bounds checked as it goes, so that it
// stops as soon as one is passed: its own work is linear in the limits.
type selectionBounds struct {
	maxSelections, maxSetSelections, maxTokens int
	// cache is the executor's query cache: what it holds has passed.
	cache graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = selectionBounds{}

func (selectionBounds) ExtensionName() string                   { return "SelectionBounds" }
func (selectionBounds) Validate(graphql.ExecutableSchema) error { return nil }

func (b selectionBounds) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if _, ok := b.cache.Get(ctx, params.Query); ok {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: params.Query}, b.maxTokens)
	if err != nil {
		return nil // the executor reports it as it parses again
	}
	w := selectionWalker{
		maxSet:    b.maxSetSelections,
		budget:    b.maxSelections,
		fragments: map[string]*ast.FragmentDefinition{},
		widths:    map[string]int{},
		expanding: map[string]bool{},
	}
	for _, f := range doc.Fragments {
		w.fragments[f.Name] = f
	}
	// Validation checks every operation and every fragment definition.
	ok := true
	for _, op := range doc.Operations {
		ok = ok && w.root(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		ok = ok && w.root(f.SelectionSet)
	}
	switch {
	case ok:
		return nil
	case w.budget < 0:
		return limitError(fmt.Sprintf("the document is over the limit of %d fields once its fragments are expanded", b.maxSelections),
			"selections", b.maxSelections+1, b.maxSelections)
	default:
		return limitError(fmt.Sprintf("a selection set is over the limit of %d fields once its fragments are expanded and same-named fields merged", b.maxSetSelections),
			"setSelections", b.maxSetSelections+1, b.maxSetSelections)
	}
}

// selectionWalker walks a document as the overlapping-fields rule does.
// budget is how many more fields it may visit.
type selectionWalker struct {
	maxSet, budget int
	fragments      map[string]*ast.FragmentDefinition
	// widths memoizes how many fields a fragment has at its own level,
	// its spreads expanded, so that a fragment of nothing but spreads
	// (doubling 40 times) is skipped, and one too wide refused, without
	// expanding it.
	widths map[string]int
	// expanding marks the fragments being expanded: a cycle (which
	// validation refuses) ends.
	expanding map[string]bool
}

// root checks the selection set of an operation or a fragment definition.
func (w *selectionWalker) root(set ast.SelectionSet) bool {
	fields, ok := w.collect(nil, set)
	return ok && w.check(fields)
}

// check checks that, for each response name of fields, the selections of
// its fields merged are within the bounds, and so on down.
func (w *selectionWalker) check(fields []*ast.Field) bool {
	groups := map[string][]*ast.Field{}
	var names []string
	for _, f := range fields {
		if _, ok := groups[f.Alias]; !ok {
			names = append(names, f.Alias)
		}
		groups[f.Alias] = append(groups[f.Alias], f)
	}
	for _, name := range names {
		var merged []*ast.Field
		for _, f := range groups[name] {
			var ok bool
			if merged, ok = w.collect(merged, f.SelectionSet); !ok {
				return false
			}
		}
		if len(merged) > 0 && !w.check(merged) {
			return false
		}
	}
	return true
}

// collect appends the fields of set at its own level to dst, fragments
// expanded; false when that passes a bound.
func (w *selectionWalker) collect(dst []*ast.Field, set ast.SelectionSet) ([]*ast.Field, bool) {
	for _, sel := range set {
		var ok bool
		switch sel := sel.(type) {
		case *ast.Field:
			if w.budget--; w.budget < 0 || len(dst) >= w.maxSet {
				return dst, false
			}
			dst = append(dst, sel)
		case *ast.InlineFragment:
			if dst, ok = w.collect(dst, sel.SelectionSet); !ok {
				return dst, false
			}
		case *ast.FragmentSpread:
			def := w.fragments[sel.Name]
			if def == nil || w.expanding[sel.Name] {
				continue
			}
			width := w.width(sel.Name)
			if width == 0 {
				continue
			}
			if width > w.maxSet-len(dst) {
				return dst, false
			}
			w.expanding[sel.Name] = true
			dst, ok = w.collect(dst, def.SelectionSet)
			w.expanding[sel.Name] = false
			if !ok {
				return dst, false
			}
		}
	}
	return dst, true
}

// width is how many fields the named fragment has at its own level, its
// spreads expanded, saturating.
func (w *selectionWalker) width(name string) int {
	if n, ok := w.widths[name]; ok {
		return max(n, 0)
	}
	w.widths[name] = -1 // a cycle counts nothing
	n := w.setWidth(w.fragments[name].SelectionSet)
	w.widths[name] = n
	return n
}

func (w *selectionWalker) setWidth(set ast.SelectionSet) int {
	n := 0
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			n = addCost(n, 1)
		case *ast.InlineFragment:
			n = addCost(n, w.setWidth(sel.SelectionSet))
		case *ast.FragmentSpread:
			if w.fragments[sel.Name] != nil {
				n = addCost(n, w.width(sel.Name))
			}
		}
	}
	return n
}
