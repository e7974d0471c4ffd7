package rules

import "sync/atomic"

// Holder holds the rule set in force. Reloads swap it atomically;
// a job uses the set it read at its start throughout.
type Holder struct {
	p atomic.Pointer[RuleSet]
}

// NewHolder returns a holder with rs in force.
func NewHolder(rs *RuleSet) *Holder {
	h := &Holder{}
	h.p.Store(rs)
	return h
}

// Load returns the rule set in force.
func (h *Holder) Load() *RuleSet { return h.p.Load() }

// Store puts rs in force.
func (h *Holder) Store(rs *RuleSet) { h.p.Store(rs) }
