package rules

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Matcher evaluates a fixed list of rules against one customer after another,
// as scheduled sweeps do, without allocating an environment and a VM per
// rule and customer. A Matcher is not safe for concurrent use: make one per
// goroutine (rules themselves are shared).
type Matcher struct {
	rules []*Rule
	env   env
	vm    vm.VM
}

// NewMatcher returns a Matcher for rs evaluated at now (the Input.Now of
// every evaluation). Expressions see a zero event.
func NewMatcher(rs []*Rule, now time.Time) *Matcher {
	m := &Matcher{rules: rs}
	m.env.Now = now
	var locs *locationCache
	if len(rs) > 0 {
		locs = rs[0].locs
	}
	if locs == nil {
		locs = &locationCache{}
	}
	m.env.setHelpers(now, func() string { return m.env.Customer.Timezone }, locs)
	return m
}

// Rules returns the rules the Matcher evaluates, in order.
func (m *Matcher) Rules() []*Rule { return m.rules }

// Match evaluates every rule for c and sets matched[i] for Rules()[i];
// matched must be at least as long. A rule failing at run time does not
// match; the first such error is returned after all rules ran.
func (m *Matcher) Match(c *Customer, matched []bool) error {
	m.env.Customer = *c
	var firstErr error
	for i, r := range m.rules {
		matched[i] = false
		if r.program == nil {
			matched[i] = true
			continue
		}
		out, err := m.vm.Run(r.program, &m.env)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("rule %q: %w", r.Name, err)
			}
			continue
		}
		b, _ := out.(bool)
		matched[i] = b
	}
	return firstErr
}
