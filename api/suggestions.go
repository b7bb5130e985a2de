package api

import (
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// validationRules is gqlparser's default rule set, with every rule that
// suggests ("Did you mean …?") swapped for its variant that does not when
// suggestions are off.
//
// gqlgen's SetDisableSuggestion swaps only FieldsOnCorrectType and
// ScalarLeafs, so with suggestions off a misspelt argument, input field,
// enum value or fragment type condition was still answered with the names
// next to it (issue 10, F8): with introspection off, a way to read the
// schema name by name. gqlparser v2.5.64 suggests in exactly the five rules
// below (validator/rules: every SuggestListQuoted, SuggestListUnquoted and
// Suggestf). The rules keep their names, so gqlgen's own swap still finds
// them. Turning suggestions off also skips computing them, an edit distance
// to every name in scope.
//
// The one rule set serves HTTP and websockets alike: both go through the
// executor that parses and validates.
func validationRules(disableSuggestions bool) func() *rules.Rules {
	return func() *rules.Rules {
		r := rules.NewDefaultRules()
		if !disableSuggestions {
			return r
		}
		for _, swap := range []struct{ suggesting, silent core.Rule }{
			{rules.FieldsOnCorrectTypeRule, rules.FieldsOnCorrectTypeRuleWithoutSuggestions},
			{rules.ScalarLeafsRule, rules.ScalarLeafsRuleWithoutSuggestions},
			{rules.KnownArgumentNamesRule, rules.KnownArgumentNamesRuleWithoutSuggestions},
			{rules.KnownTypeNamesRule, rules.KnownTypeNamesRuleWithoutSuggestions},
			{rules.ValuesOfCorrectTypeRule, rules.ValuesOfCorrectTypeRuleWithoutSuggestions},
		} {
			r.ReplaceRule(swap.suggesting.Name, swap.silent.RuleFunc)
		}
		return r
	}
}
