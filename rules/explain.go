package rules

import (
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	exprparser "github.com/expr-lang/expr/parser"
)

// Condition is one node of an explained `when`: a sub-expression and the
// value it had. The && / || / and / or operators (and a ! or not in front
// of one) are split into their operands, so a marketer sees which part of
// the condition made the rule match or not.
type Condition struct {
	// Source is the sub-expression as expr prints it: the operators as
	// written, spacing and parentheses normalised.
	Source string `json:"source"`
	// Op is "&&", "||" or "!" for a split node; "" for a leaf.
	Op string `json:"op,omitempty"`
	// Value is what Source evaluated to (usually a bool); nil when it
	// failed, see Err.
	Value any `json:"value"`
	// Err is the runtime error of Source, if any (e.g. comparing a missing
	// event property with a number).
	Err string `json:"error,omitempty"`
	// Operands are the split operands of Op, in source order. Operands are
	// evaluated even when the operator would short-circuit, so every part
	// shows its value.
	Operands []*Condition `json:"operands,omitempty"`
}

// Explain evaluates the rule's condition for in and returns it as a tree of
// sub-conditions with their values. A rule without `when` explains as the
// single condition "true". Each node is compiled and run with the same
// typed environment Match uses, so its value is what Match would see. It
// errors only when the condition cannot be re-parsed, which cannot happen
// for a rule that Parse returned.
func (r *Rule) Explain(in Input) (*Condition, error) {
	if r.When == "" {
		return &Condition{Source: "true", Value: true}, nil
	}
	tree, err := exprparser.Parse(r.When)
	if err != nil {
		return nil, fmt.Errorf("rule %q: explain: %w", r.Name, err)
	}
	locs := r.locs
	if locs == nil {
		locs = &locationCache{}
	}
	return explainNode(tree.Node, newEnv(in, locs)), nil
}

// explainNode builds the condition of node and evaluates it in e.
func explainNode(node ast.Node, e env) *Condition {
	c := &Condition{Source: node.String()}
	switch n := node.(type) {
	case *ast.BinaryNode:
		if op := logicalOp(n.Operator); op != "" {
			c.Op = op
			for _, operand := range flatten(n, op) {
				c.Operands = append(c.Operands, explainNode(operand, e))
			}
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			if b, ok := n.Node.(*ast.BinaryNode); ok && logicalOp(b.Operator) != "" {
				c.Op = "!"
				c.Operands = []*Condition{explainNode(n.Node, e)}
			}
		}
	}
	c.Value, c.Err = evalSource(c.Source, e)
	return c
}

// logicalOp normalises the boolean operators; "" for any other operator.
func logicalOp(op string) string {
	switch op {
	case "&&", "and":
		return "&&"
	case "||", "or":
		return "||"
	}
	return ""
}

// flatten lists the operands of a chain of one logical operator, so that
// a && b && c has three operands rather than a nested pair.
func flatten(node ast.Node, op string) []ast.Node {
	if b, ok := node.(*ast.BinaryNode); ok && logicalOp(b.Operator) == op {
		return append(flatten(b.Left, op), flatten(b.Right, op)...)
	}
	return []ast.Node{node}
}

// evalSource compiles and runs one sub-expression.
func evalSource(src string, e env) (any, string) {
	prog, err := compileExpr(src)
	if err != nil {
		return nil, err.Error()
	}
	out, err := expr.Run(prog, e)
	if err != nil {
		// expr adds a caret snippet on further lines; the source is shown anyway.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return nil, msg
	}
	return out, ""
}
