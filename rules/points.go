package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// ActionPoints grants loyalty points.
const ActionPoints = "points"

var pointsKeys = []string{"amount", "expires_in", "pending_for", "reason"}

// PointsAction grants a lot of loyalty points. In YAML:
// {amount: "floor(event.properties.total / 10)", expires_in: 30d,
// pending_for: 14d, reason: "points on every order"}.
type PointsAction struct {
	// Amount is the expr source of the number of points, e.g. "100" or
	// "floor(event.properties.total / 10)"; compiled at load like when.
	Amount string
	// ExpiresIn is how long the lot is valid after it becomes available;
	// 0 means it never expires.
	ExpiresIn time.Duration
	// PendingFor is how long the lot waits before it can be spent (e.g.
	// the return window); 0 means at once.
	PendingFor time.Duration
	// Reason is shown in the ledger and the customer's timeline; defaults
	// to the rule's name.
	Reason string

	program *vm.Program
}

// Points evaluates Amount for in, rounded down to whole points. A result
// that is not a finite number is an error; zero or less means the rule
// grants nothing this time.
func (a *PointsAction) Points(in Input, locs *locationCache) (int64, error) {
	out, err := expr.Run(a.program, newEnv(in, locs))
	if err != nil {
		return 0, fmt.Errorf("points amount: %w", err)
	}
	f, ok := out.(float64)
	if !ok {
		return 0, fmt.Errorf("points amount returned %T, want a number", out)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("points amount is %v, want a finite number", f)
	}
	if f <= 0 {
		return 0, nil
	}
	if f > 1e12 {
		return 0, fmt.Errorf("points amount %v is over the limit of 1e12", f)
	}
	return int64(math.Floor(f)), nil
}

// PointsFor evaluates the amount of a points action of rule r for in.
func (r *Rule) PointsFor(a *PointsAction, in Input) (int64, error) {
	n, err := a.Points(in, r.locs)
	if err != nil {
		return 0, fmt.Errorf("rule %q: %w", r.Name, err)
	}
	return n, nil
}

func (p *parser) points(n *yaml.Node, rule string) *PointsAction {
	const hint = `e.g. {amount: "floor(event.properties.total / 10)", expires_in: 30d}`
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, hint, "points must be a mapping, got %s", kindName(n))
		return nil
	}
	errsBefore := len(p.errs)
	m := p.mapping(n, rule, pointsKeys, "unknown key %q in points")
	a := &PointsAction{Reason: rule}
	if v, ok := m["amount"]; ok {
		if src, ok := p.str(v, rule, "points amount"); ok {
			a.Amount = strings.TrimSpace(src)
			a.program = p.numberExpr(v, rule, "points amount", a.Amount)
		}
	} else {
		p.errorf(n, rule, hint, "points needs an amount")
	}
	if v, ok := m["expires_in"]; ok {
		a.ExpiresIn, _ = p.duration(v, rule, "points expires_in", false)
	}
	if v, ok := m["pending_for"]; ok {
		a.PendingFor, _ = p.duration(v, rule, "points pending_for", true)
	}
	if v, ok := m["reason"]; ok {
		a.Reason, _ = p.str(v, rule, "points reason")
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return a
}

// numberExpr compiles src, an expression that must give a number, with the
// same environment and diagnostics as when; it warns about unguarded reads
// of properties the way when does.
func (p *parser) numberExpr(n *yaml.Node, rule, what, src string) *vm.Program {
	prog, err := compileExpr(src, expr.AsFloat64())
	if err != nil {
		var fe *file.Error
		if !errors.As(err, &fe) {
			p.errorf(n, rule, `e.g. "100" or "floor(event.properties.total / 10)"`, "%s must be a number expression: %v", what, err)
			return nil
		}
		msg, hint := exprMessage(strings.TrimSpace(fe.Message))
		e := &LoadError{File: p.file, Rule: rule, Message: what + ": " + msg, Hint: hint}
		e.Line, e.Column = p.exprPos(n, fe.From)
		p.errs = append(p.errs, e)
		return nil
	}
	for _, u := range unguardedReads(src) {
		e := &LoadError{File: p.file, Rule: rule, Warning: true,
			Message: fmt.Sprintf("%s: %s is used as a number (%s) without a guard: when it is missing or not a number the rule grants nothing and is skipped", what, u.path, u.op),
			Hint:    fmt.Sprintf("write (%s ?? 0)", u.path)}
		e.Line, e.Column = p.exprPos(n, u.from)
		p.warns = append(p.warns, e)
	}
	return prog
}

// pointsFields are the customer fields computed from the points ledger and
// the tiers: evaluations read them only for rule sets that use them.
var pointsFields = []string{"points_balance", "points_pending", "points_expiring_at", "tier"}

// ReadsPoints reports whether a rule's when reads a points or tier field,
// or a rule grants points (its amount may read them).
func (rs *RuleSet) ReadsPoints() bool {
	for _, r := range rs.Rules {
		for _, f := range r.Fields {
			if slices.Contains(pointsFields, f) {
				return true
			}
		}
		for _, a := range r.Actions {
			if a.Points != nil {
				return true
			}
		}
	}
	return false
}
