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
// more selections than validation can check in a few milliseconds.
//
// The parser is linear and bounded by the token limit, but validation is
// not: its overlapping-fields rule compares the fields of a selection set
// pairwise, fragments expanded, so 10,000 __typename fields take seconds.
// This pass parses the document (only when it is not in the query cache,
// where validated documents are), counts its selections, and counts the
// fields of each set with its fragments expanded, each fragment once: a
// linear pass.
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
	c := selectionCounter{fragments: map[string]*ast.FragmentDefinition{}, expanded: map[string]int{}}
	for _, f := range doc.Fragments {
		c.fragments[f.Name] = f
	}
	for _, op := range doc.Operations {
		c.set(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		if c.fragments[f.Name] == f {
			c.fragment(f.Name)
		} else {
			c.set(f.SelectionSet) // a duplicate name, still to be validated
		}
	}
	if c.total > b.maxSelections {
		return limitError(fmt.Sprintf("the document has %d selections, above the limit of %d", c.total, b.maxSelections),
			"selections", c.total, b.maxSelections)
	}
	if c.widest > b.maxSetSelections {
		return limitError(fmt.Sprintf("a selection set has %d fields once its fragments are expanded, above the limit of %d", c.widest, b.maxSetSelections),
			"setSelections", c.widest, b.maxSetSelections)
	}
	return nil
}

// selectionCounter counts the selections of a document as written (total)
// and the largest number of fields a selection set has once its fragments
// are expanded (widest).
type selectionCounter struct {
	fragments map[string]*ast.FragmentDefinition
	// expanded memoizes the expanded field count of each fragment; -1
	// marks one being counted, so that a cycle (which validation refuses
	// later) ends.
	expanded      map[string]int
	total, widest int
}

// set counts the selections of set and its descendants, and returns the
// fields of set with its fragments expanded.
func (c *selectionCounter) set(set ast.SelectionSet) int {
	fields := 0
	for _, sel := range set {
		c.total++
		switch sel := sel.(type) {
		case *ast.Field:
			fields++
			c.set(sel.SelectionSet)
		case *ast.InlineFragment:
			fields = addCost(fields, c.set(sel.SelectionSet))
		case *ast.FragmentSpread:
			fields = addCost(fields, c.fragment(sel.Name))
		}
	}
	c.widest = max(c.widest, fields)
	return fields
}

// fragment returns the expanded field count of the named fragment,
// counting its selections the first time only.
func (c *selectionCounter) fragment(name string) int {
	if n, ok := c.expanded[name]; ok {
		return max(n, 0)
	}
	def := c.fragments[name]
	if def == nil {
		return 0
	}
	c.expanded[name] = -1
	n := c.set(def.SelectionSet)
	c.expanded[name] = n
	return n
}
