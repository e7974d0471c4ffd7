package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"gopkg.in/yaml.v3"
)

func (p *parser) when(n *yaml.Node, r *Rule) {
	src, ok := p.str(n, r.Name, "when")
	if !ok {
		return
	}
	r.When = src
	prog, err := compileExpr(src, expr.AsBool())
	if err != nil {
		var fe *file.Error
		if !errors.As(err, &fe) {
			got := strings.TrimPrefix(err.Error(), "expected bool, but got ")
			if got == "unknown" {
				got = "nil"
			}
			p.errorf(n, r.Name, "", "when must be a boolean expression, got %s", got)
			return
		}
		msg, hint := exprMessage(strings.TrimSpace(fe.Message))
		e := &LoadError{File: p.file, Rule: r.Name, Message: "when: " + msg, Hint: hint}
		e.Line, e.Column = p.exprPos(n, fe.From)
		p.errs = append(p.errs, e)
		return
	}
	r.program = prog
	r.Fields = readFields(prog.Node())
	for _, u := range unguardedReads(src) {
		e := &LoadError{File: p.file, Rule: r.Name, Warning: true,
			Message: fmt.Sprintf("when: %s is used as a number (%s) without a guard: when it is missing or not a number the condition fails at run time and the rule is skipped", u.path, u.op),
			Hint:    fmt.Sprintf(`write (%s ?? 0), or test type(%s) in ["int", "float"] && … first`, u.path, u.path)}
		e.Line, e.Column = p.exprPos(n, u.from)
		p.warns = append(p.warns, e)
	}
}

// exprMessage rewrites an expr compile message in rules-file terms and
// suggests a fix.
func exprMessage(msg string) (string, string) {
	if m := exprUnknownRe.FindStringSubmatch(msg); m != nil {
		hint := didYouMean(m[1], envNames)
		if slices.Contains(customerFields, m[1]) {
			hint = meant("customer." + m[1])
		} else if slices.Contains(eventFields, m[1]) {
			hint = meant("event." + m[1])
		}
		if hint == "" {
			hint = "known names: " + strings.Join(envNames, ", ")
		}
		return fmt.Sprintf("unknown name %q", m[1]), hint
	}
	if m := exprNoFieldRe.FindStringSubmatch(msg); m != nil {
		owner, fields := "customer", customerFields
		if m[1] == "Event" {
			owner, fields = "event", eventFields
		}
		hint := didYouMean(m[2], fields)
		if hint == "" {
			hint = owner + " fields: " + strings.Join(fields, ", ")
		}
		return fmt.Sprintf("%s has no field %q", owner, m[2]), hint
	}
	r := strings.NewReplacer("rules.Customer", "customer", "rules.Event", "event", "rules.env", "environment")
	return r.Replace(msg), ""
}

// readFields lists the customer fields an expression reads.
func readFields(node ast.Node) []string {
	v := &fieldVisitor{seen: map[string]bool{}}
	ast.Walk(&node, v)
	if v.customerIdents > v.customerMembers {
		// customer used as a whole or with a computed key: it may read anything.
		return slices.Clone(customerFields)
	}
	fields := make([]string, 0, len(v.seen))
	for f := range v.seen {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	return fields
}

type fieldVisitor struct {
	seen            map[string]bool
	customerIdents  int
	customerMembers int
}

func (v *fieldVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		// $env.customer.F reads customer too, past the member count below.
		if n.Value == "customer" || n.Value == "$env" {
			v.customerIdents++
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "customer" {
			if s, ok := n.Property.(*ast.StringNode); ok {
				v.customerMembers++
				v.seen[s.Value] = true
			}
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "local_hour" {
			v.seen["timezone"] = true
		}
	}
}
