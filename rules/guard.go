package rules

import (
	"slices"

	"github.com/expr-lang/expr/ast"
	exprparser "github.com/expr-lang/expr/parser"
)

// unguardedRead is a read of an event property or customer attribute that
// is used as a number (compared with <, <=, >, >=, or in arithmetic)
// without a guard: when the value is missing (nil) or a string, the
// condition fails at run time and the rule is skipped for that event.
type unguardedRead struct {
	path string // e.g. event.properties.score
	from int    // rune offset of the read in the expression
	op   string // the operator it is an operand of
}

// numericOps are the operators whose operands must be numbers (or, for
// ordering, both strings): a nil or mistyped operand is a run-time error.
// == and != are not among them: comparing nil or a string with a number is
// false, not an error.
var numericOps = []string{"<", "<=", ">", ">=", "+", "-", "*", "/", "%", "**", "^", ".."}

// unguardedReads lists the reads of event.properties.X and
// customer.attributes.X in src that are operands of a numeric operator and
// not guarded by an earlier test of the same value in the condition:
// `x != nil`, `x == nil ||`, `"X" in event.properties`, `type(x) …`, or a
// default with `x ?? 0`. It parses src itself (the compiled program's tree
// is rewritten by the optimizer); a src that does not parse has none.
func unguardedReads(src string) []unguardedRead {
	tree, err := exprparser.Parse(src)
	if err != nil {
		return nil
	}
	var out []unguardedRead
	walkGuards(tree.Node, nil, &out)
	return out
}

// walkGuards looks for unguarded reads under node; guarded lists the
// paths an enclosing condition has already tested.
func walkGuards(node ast.Node, guarded []string, out *[]unguardedRead) {
	switch n := node.(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			// The right side runs only after the left side: what the left
			// tests guards the right.
			walkGuards(n.Left, guarded, out)
			walkGuards(n.Right, append(slices.Clip(guarded), guardsIn(n.Left)...), out)
			return
		case "??":
			// x ?? default: x itself is read safely.
			if dynamicPath(n.Left) == "" {
				walkGuards(n.Left, guarded, out)
			}
			walkGuards(n.Right, guarded, out)
			return
		}
		if slices.Contains(numericOps, n.Operator) {
			for _, side := range []ast.Node{n.Left, n.Right} {
				if p := dynamicPath(side); p != "" && !slices.Contains(guarded, p) {
					*out = append(*out, unguardedRead{path: p, from: readStart(side), op: n.Operator})
				}
			}
		}
		walkGuards(n.Left, guarded, out)
		walkGuards(n.Right, guarded, out)
	case *ast.UnaryNode:
		if n.Operator == "-" || n.Operator == "+" {
			if p := dynamicPath(n.Node); p != "" && !slices.Contains(guarded, p) {
				*out = append(*out, unguardedRead{path: p, from: readStart(n.Node), op: n.Operator})
			}
		}
		walkGuards(n.Node, guarded, out)
	case *ast.ConditionalNode:
		walkGuards(n.Cond, guarded, out)
		inner := append(slices.Clip(guarded), guardsIn(n.Cond)...)
		walkGuards(n.Exp1, inner, out)
		walkGuards(n.Exp2, inner, out)
	case *ast.MemberNode:
		walkGuards(n.Node, guarded, out)
		walkGuards(n.Property, guarded, out)
	case *ast.CallNode:
		walkGuards(n.Callee, guarded, out)
		for _, a := range n.Arguments {
			walkGuards(a, guarded, out)
		}
	case *ast.BuiltinNode:
		for _, a := range n.Arguments {
			walkGuards(a, guarded, out)
		}
	case *ast.ArrayNode:
		for _, a := range n.Nodes {
			walkGuards(a, guarded, out)
		}
	case *ast.ChainNode:
		walkGuards(n.Node, guarded, out)
	case *ast.PredicateNode:
		walkGuards(n.Node, guarded, out)
	case *ast.SliceNode:
		walkGuards(n.Node, guarded, out)
	}
}

// guardsIn lists the paths that node tests for presence or type: x != nil,
// x == nil, "X" in map, type(x).
func guardsIn(node ast.Node) []string {
	v := &guardVisitor{}
	ast.Walk(&node, v)
	return v.paths
}

type guardVisitor struct{ paths []string }

func (v *guardVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		switch n.Operator {
		case "==", "!=":
			_, lnil := n.Left.(*ast.NilNode)
			_, rnil := n.Right.(*ast.NilNode)
			if p := dynamicPath(n.Left); p != "" && rnil {
				v.paths = append(v.paths, p)
			}
			if p := dynamicPath(n.Right); p != "" && lnil {
				v.paths = append(v.paths, p)
			}
		case "in", "not in":
			if key, ok := n.Left.(*ast.StringNode); ok {
				if m := mapPath(n.Right); m != "" {
					v.paths = append(v.paths, m+"."+key.Value)
				}
			}
		}
	case *ast.BuiltinNode:
		if n.Name == "type" && len(n.Arguments) == 1 {
			if p := dynamicPath(n.Arguments[0]); p != "" {
				v.paths = append(v.paths, p)
			}
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "type" && len(n.Arguments) == 1 {
			if p := dynamicPath(n.Arguments[0]); p != "" {
				v.paths = append(v.paths, p)
			}
		}
	}
}

// dynamicPath returns "event.properties.X" or "customer.attributes.X" when
// node reads that value (with . or ["X"]), else "".
func dynamicPath(node ast.Node) string {
	m, ok := node.(*ast.MemberNode)
	if !ok {
		return ""
	}
	key, ok := m.Property.(*ast.StringNode)
	if !ok {
		return ""
	}
	if base := mapPath(m.Node); base != "" {
		return base + "." + key.Value
	}
	return ""
}

// mapPath returns "event.properties" or "customer.attributes" when node is
// that map, else "".
func mapPath(node ast.Node) string {
	m, ok := node.(*ast.MemberNode)
	if !ok {
		return ""
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	key, ok2 := m.Property.(*ast.StringNode)
	if !ok || !ok2 {
		return ""
	}
	switch {
	case id.Value == "event" && key.Value == "properties", id.Value == "customer" && key.Value == "attributes":
		return id.Value + "." + key.Value
	}
	return ""
}

// readStart is the offset of the first character of a member chain
// (the "e" of event.properties.score).
func readStart(node ast.Node) int {
	for {
		m, ok := node.(*ast.MemberNode)
		if !ok {
			return node.Location().From
		}
		node = m.Node
	}
}
