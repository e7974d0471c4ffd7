package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// LoadError is one problem found in a rules file, at a 1-based line and
// column. Rule names the rule it is in ("" for file-level problems). Hint is
// an optional suggestion such as `did you mean "when"?`. Warning marks
// problems that do not stop the file from loading (RuleSet.Warnings).
type LoadError struct {
	File         string
	Line, Column int
	Rule         string
	Message      string
	Hint         string
	Warning      bool
}

// Error formats e as `file:line:col: rule "name": message (hint)`, leaving out
// the rule part for file-level problems and the hint when there is none.
// Warnings say so after the position: `file:line:col: warning: …`.
func (e *LoadError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	if e.Warning {
		b.WriteString("warning: ")
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	b.WriteString(e.Message)
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

// LoadErrors is every error found in a rules file, in file order. Parse
// returns it as *LoadErrors; read it with errors.As. errors.As with a
// *LoadError target finds the first one.
type LoadErrors []*LoadError

// Error joins the errors' messages with newlines.
func (es LoadErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual errors, for errors.Is and errors.As.
func (es LoadErrors) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}

// sortLoadErrors orders errors by position, keeping discovery order for ties.
func sortLoadErrors(es []*LoadError) {
	slices.SortStableFunc(es, func(a, b *LoadError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}
