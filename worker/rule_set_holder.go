package worker

import (
	"sync/atomic"

	"github.com/ciclohq/ciclo/rules"
)

// RuleSetHolder holds the rule set in force. Reloads swap it atomically;
// a job uses the set it read at its start throughout.
type RuleSetHolder struct {
	p atomic.Pointer[rules.RuleSet]
}

// NewRuleSetHolder returns a holder with rs in force.
func NewRuleSetHolder(rs *rules.RuleSet) *RuleSetHolder {
	h := &RuleSetHolder{}
	h.p.Store(rs)
	return h
}

// Load returns the rule set in force.
func (h *RuleSetHolder) Load() *rules.RuleSet { return h.p.Load() }

// Store puts rs in force.
func (h *RuleSetHolder) Store(rs *rules.RuleSet) { h.p.Store(rs) }
