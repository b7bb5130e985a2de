package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// strictScalars makes variables coerce to the built-in scalars as the
// GraphQL spec says (CONTRACT §3): a JSON string is never an Int, a Float
// or a Boolean, and a JSON number is never a String, at any depth (inside
// input objects and lists too); an Int is a whole number in 32 bits.
//
// gqlparser's validator.VariableValues accepts "100" for an Int (at the
// top level and inside input objects) and a number for a String nested in
// an input object, and gqlgen's unmarshalers then convert them, so
// `tasks(first: $n)` with {"n": "100"} runs — and the cost walker, which
// reads the variable as a number, counted it as the default page.
//
// It runs after VariableValues, on the values it coerced: those keep a
// JSON string as a Go string, and a JSON number as json.Number (the
// transports decode with UseNumber) or, at the top level, as the int64 or
// float64 it became. It is registered before every other extension, so
// that none of them sees a value the operation will not run with. The
// refusal has the code and shape of VariableValues' own: the path of the
// variable and GRAPHQL_VALIDATION_FAILED.
type strictScalars struct {
	schema *ast.Schema
}

var (
	_ graphql.HandlerExtension        = (*strictScalars)(nil)
	_ graphql.OperationContextMutator = (*strictScalars)(nil)
)

// ExtensionName names the extension in gqlgen's list.
func (*strictScalars) ExtensionName() string { return "StrictScalars" }

// Validate keeps the schema the variables are checked against.
func (s *strictScalars) Validate(es graphql.ExecutableSchema) error {
	s.schema = es.Schema()
	return nil
}

// MutateOperationContext refuses the operation when a variable holds a
// value of the wrong JSON type for a built-in scalar.
func (s *strictScalars) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.Operation == nil {
		return nil
	}
	for _, def := range opCtx.Operation.VariableDefinitions {
		val, ok := opCtx.Variables[def.Variable]
		if !ok {
			continue
		}
		if err := s.check(def.Type, val, ast.Path{ast.PathName("variable"), ast.PathName(def.Variable)}); err != nil {
			errcode.Set(err, errcode.ValidationFailed)
			return err
		}
	}
	return nil
}

// check walks val along typ. Null and missing values are VariableValues'
// business (it already refused a null where the type forbids one), as are
// unknown fields and enum values.
func (s *strictScalars) check(typ *ast.Type, val any, path ast.Path) *gqlerror.Error {
	if val == nil {
		return nil
	}
	if typ.Elem != nil {
		// A list decodes as []any; VariableValues wraps a single value
		// given for a list (a list of one, as the spec says) in a slice
		// of the value's own type, such as []bool.
		list := reflect.ValueOf(val)
		if list.Kind() != reflect.Slice {
			return s.check(typ.Elem, val, path)
		}
		for i := range list.Len() {
			if err := s.check(typ.Elem, list.Index(i).Interface(), append(path[:len(path):len(path)], ast.PathIndex(i))); err != nil {
				return err
			}
		}
		return nil
	}
	def := s.schema.Types[typ.NamedType]
	if def == nil {
		return nil
	}
	switch def.Kind {
	case ast.InputObject:
		obj, ok := val.(map[string]any)
		if !ok {
			return nil
		}
		for _, field := range def.Fields {
			if v, ok := obj[field.Name]; ok {
				if err := s.check(field.Type, v, append(path[:len(path):len(path)], ast.PathName(field.Name))); err != nil {
					return err
				}
			}
		}
	case ast.Scalar:
		return checkScalar(typ.NamedType, val, path)
	}
	return nil
}

// checkScalar refuses val for the built-in scalar name unless it is of the
// JSON type the spec asks for. ID takes a string or a number, which
// VariableValues already checks, and a malformed one is the resolver's
// BAD_USER_INPUT (CONTRACT §7); custom scalars (Time) decide for
// themselves.
func checkScalar(name string, val any, path ast.Path) *gqlerror.Error {
	refuse := func(want string) *gqlerror.Error {
		return gqlerror.ErrorPathf(path, "%s must be %s, not %s", path, want, jsonKind(val))
	}
	switch name {
	case "Int":
		n, ok := wholeNumber(val)
		if !ok {
			return refuse("an Int")
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			return gqlerror.ErrorPathf(path, "%s must be an Int, which has 32 bits: %d is out of range", path, n)
		}
	case "Float":
		if !isNumber(val) {
			return refuse("a Float")
		}
	case "Boolean":
		if _, ok := val.(bool); !ok {
			return refuse("a Boolean")
		}
	case "String":
		if _, ok := val.(string); !ok {
			return refuse("a String")
		}
	}
	return nil
}

// wholeNumber returns val as an integer when it is a JSON number without
// a fractional part, in any of the forms decoding and coercion leave it.
func wholeNumber(val any) (int64, bool) {
	switch n := val.(type) {
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) || math.Abs(n) > 1<<53 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

func isNumber(val any) bool {
	switch val.(type) {
	case json.Number, int, int32, int64, float32, float64:
		return true
	}
	return false
}

// jsonKind names the JSON type of a decoded value, for error messages.
func jsonKind(val any) string {
	if isNumber(val) {
		return "a number"
	}
	switch reflect.ValueOf(val).Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Map:
		return "an object"
	case reflect.Slice:
		return "a list"
	}
	return fmt.Sprintf("a %T", val)
}
