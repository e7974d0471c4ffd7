package rules

import "reflect"

// Rule changes, as reported by Diff.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// RuleChange is one rule that differs between two rule sets.
type RuleChange struct {
	// Name is the rule's name.
	Name string
	// Change is ChangeAdded, ChangeRemoved or ChangeChanged.
	Change string
	// Old and New are the rule in each set; nil where it does not exist.
	Old, New *Rule
}

// Diff lists the rules added, removed or changed from old to next: next's
// rules in file order, then the removed ones in old's order. A rule is
// changed when anything that affects what it does differs (trigger,
// condition, cooldown, caps, actions); moving it in the file is no change.
func Diff(old, next *RuleSet) []RuleChange {
	var out []RuleChange
	for _, r := range next.Rules {
		o := old.Rule(r.Name)
		switch {
		case o == nil:
			out = append(out, RuleChange{Name: r.Name, Change: ChangeAdded, New: r})
		case !r.sameAs(o):
			out = append(out, RuleChange{Name: r.Name, Change: ChangeChanged, Old: o, New: r})
		}
	}
	for _, o := range old.Rules {
		if next.Rule(o.Name) == nil {
			out = append(out, RuleChange{Name: o.Name, Change: ChangeRemoved, Old: o})
		}
	}
	return out
}

// sameAs reports whether r and o behave the same.
func (r *Rule) sameAs(o *Rule) bool {
	return r.On == o.On && r.Schedule == o.Schedule && r.Timezone == o.Timezone && r.When == o.When &&
		r.Cooldown == o.Cooldown && r.Transactional == o.Transactional &&
		reflect.DeepEqual(r.FrequencyCap, o.FrequencyCap) && reflect.DeepEqual(r.Actions, o.Actions)
}

// Sends reports whether the rule has an action of kind (ActionEmail, …).
func (r *Rule) Sends(kind string) bool {
	for _, a := range r.Actions {
		if a.Kind() == kind {
			return true
		}
	}
	return false
}
