package rules

import (
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/expr-lang/expr/ast"
)

// maxPrefilterOffset bounds the time offsets a prefilter pushes down. Go
// durations saturate at about 292 years, so days_since and friends stop
// growing there; a bound well inside that range keeps "t Cmp now+Offset"
// exactly equivalent to the expression, and the arithmetic free of overflow.
// Comparisons with larger numbers are left to the expression.
const maxPrefilterOffset = 100 * 365 * 24 * time.Hour

// Prefilter operators (Prefilter.Op).
const (
	PrefilterAnd = "and"
	PrefilterOr  = "or"
	PrefilterCmp = "cmp"
)

// Prefilter is a condition on a customer's stored facts that holds for every
// customer a rule's `when` can match, and possibly for more. Sweeps turn it
// into SQL so that Postgres skips customers no rule can match; the compiled
// expression stays the final judge for every row returned. A nil *Prefilter
// means "any customer".
//
// Only simple shapes are understood: days_since, hours_since and days_until
// of a customer time compared (<, <=, >, >=) with a number of at most about
// a century, has(t), comparisons of customer.stage (==, !=, in) and
// customer.orders_count (==, !=, <, <=, >, >=) with literals,
// customer.unsubscribed, joined with && and ||. Anything else is "any
// customer", which is always correct.
//
// Comparisons have the expression's meaning, not SQL's: "==" is equality,
// and "null" means the time reads as zero ("never happened"), which the
// store renders to match whatever its sweeps read as a zero time.
type Prefilter struct {
	// Op is PrefilterAnd, PrefilterOr (over Args) or PrefilterCmp.
	Op string
	// Args are the operands of and/or; none is nil.
	Args []*Prefilter
	// Field is the customer field (expr name) a comparison reads.
	Field string
	// Cmp is the comparison: "<", "<=", ">", ">=", "==", "!=", "in",
	// "null" (the time is zero: never happened) or "not null".
	Cmp string
	// FromNow, for time fields, makes the comparison "Field Cmp now+Offset".
	FromNow bool
	// Offset is added to the evaluation time when FromNow is set.
	Offset time.Duration
	// Value is the literal compared with: string, []string, int or bool.
	Value any
}

// Prefilter returns the rule's prefilter; nil means any customer.
func (r *Rule) Prefilter() *Prefilter {
	if r.program == nil {
		return nil
	}
	return prefilter(r.program.Node())
}

var flipped = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}

func prefilter(n ast.Node) *Prefilter {
	switch n := n.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and":
			l, r := prefilter(n.Left), prefilter(n.Right)
			switch {
			case l == nil:
				return r
			case r == nil:
				return l
			}
			return &Prefilter{Op: PrefilterAnd, Args: []*Prefilter{l, r}}
		case "||", "or":
			l, r := prefilter(n.Left), prefilter(n.Right)
			if l == nil || r == nil {
				return nil
			}
			return &Prefilter{Op: PrefilterOr, Args: []*Prefilter{l, r}}
		case "in":
			f := customerField(n.Left)
			if f != "stage" {
				return nil
			}
			if vals, ok := stringList(n.Right); ok {
				return &Prefilter{Op: PrefilterCmp, Field: f, Cmp: "in", Value: vals}
			}
			return nil
		case "<", "<=", ">", ">=", "==", "!=":
			if p := comparison(n.Left, n.Operator, n.Right); p != nil {
				return p
			}
			return comparison(n.Right, flipped[n.Operator], n.Left)
		}
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		if customerField(n.Node) == "unsubscribed" {
			return &Prefilter{Op: PrefilterCmp, Field: "unsubscribed", Cmp: "==", Value: false}
		}
		if f := hasCall(n.Node); f != "" {
			return &Prefilter{Op: PrefilterCmp, Field: f, Cmp: "null"}
		}
	case *ast.MemberNode:
		if customerField(n) == "unsubscribed" {
			return &Prefilter{Op: PrefilterCmp, Field: "unsubscribed", Cmp: "==", Value: true}
		}
	case *ast.CallNode:
		if f := hasCall(n); f != "" {
			return &Prefilter{Op: PrefilterCmp, Field: f, Cmp: "not null"}
		}
	}
	return nil
}

// comparison handles "subject op literal".
func comparison(subject ast.Node, op string, lit ast.Node) *Prefilter {
	if f := customerField(subject); f != "" {
		switch f {
		case "stage":
			if s, ok := lit.(*ast.StringNode); ok && (op == "==" || op == "!=") {
				return &Prefilter{Op: PrefilterCmp, Field: f, Cmp: op, Value: s.Value}
			}
		case "orders_count":
			if i, ok := lit.(*ast.IntegerNode); ok {
				return &Prefilter{Op: PrefilterCmp, Field: f, Cmp: op, Value: i.Value}
			}
		}
		return nil
	}
	call, ok := subject.(*ast.CallNode)
	if !ok || len(call.Arguments) != 1 || op == "==" || op == "!=" {
		return nil
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok {
		return nil
	}
	f := customerField(call.Arguments[0])
	if !slices.Contains(timeFields, f) {
		return nil
	}
	num, ok := number(lit)
	if !ok || math.IsNaN(num) {
		return nil
	}
	var unit time.Duration
	switch id.Value {
	case "days_since", "days_until":
		unit = 24 * time.Hour
	case "hours_since":
		unit = time.Hour
	default:
		return nil
	}
	if math.Abs(num*float64(unit)) > float64(maxPrefilterOffset) {
		return nil
	}
	off := time.Duration(num * float64(unit))
	if id.Value == "days_until" {
		// (t - now) op n  ⇔  t op now + n
		return &Prefilter{Op: PrefilterCmp, Field: f, Cmp: op, FromNow: true, Offset: off}
	}
	// (now - t) op n  ⇔  t flipped(op) now - n
	return &Prefilter{Op: PrefilterCmp, Field: f, Cmp: flipped[op], FromNow: true, Offset: -off}
}

// timeFields are the customer fields of type time.Time.
var timeFields = []string{"stage_entered_at", "created_at", "last_seen_at", "first_order_at", "last_order_at", "coupon_expires_at"}

// customerField returns F for customer.F, else "".
func customerField(n ast.Node) string {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return ""
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "customer" {
		return ""
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return ""
	}
	return s.Value
}

// hasCall returns F for has(customer.F) on a time field, else "".
func hasCall(n ast.Node) string {
	call, ok := n.(*ast.CallNode)
	if !ok || len(call.Arguments) != 1 {
		return ""
	}
	if id, ok := call.Callee.(*ast.IdentifierNode); !ok || id.Value != "has" {
		return ""
	}
	if f := customerField(call.Arguments[0]); slices.Contains(timeFields, f) {
		return f
	}
	return ""
}

func number(n ast.Node) (float64, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return float64(n.Value), true
	case *ast.FloatNode:
		return n.Value, true
	case *ast.UnaryNode:
		if v, ok := number(n.Node); ok && n.Operator == "-" {
			return -v, true
		}
	case *ast.ConstantNode:
		switch v := n.Value.(type) {
		case int:
			return float64(v), true
		case float64:
			return v, true
		}
	}
	return 0, false
}

// stringList reads a literal list of strings, also once the optimizer has
// turned it into a set constant.
func stringList(n ast.Node) ([]string, bool) {
	switch n := n.(type) {
	case *ast.ArrayNode:
		out := make([]string, 0, len(n.Nodes))
		for _, e := range n.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil, false
			}
			out = append(out, s.Value)
		}
		return out, true
	case *ast.ConstantNode:
		v := reflect.ValueOf(n.Value)
		if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.String {
			return nil, false
		}
		out := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			out = append(out, k.String())
		}
		slices.Sort(out)
		return out, true
	}
	return nil, false
}
