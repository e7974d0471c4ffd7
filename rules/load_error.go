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

// didYouMean returns a hint naming the candidate closest to name, or "" when
// none is close enough to be a likely typo.
func didYouMean(name string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist == 0 && best == name {
		return ""
	}
	maxDist := max(1, (len([]rune(name))+2)/3)
	if bestDist > maxDist {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

// editDistance is the optimal-string-alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent runes
// each cost 1, so "wehn" is 1 away from "when".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 { // names, not essays: keep it cheap
		if a == b {
			return 0
		}
		return max(len(ra), len(rb))
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
