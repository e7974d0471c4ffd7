package templates

import (
	"fmt"
	"slices"
	"strings"
	tparse "text/template/parse"
)

// checkRanges rejects a template whose loops over numbers would run more
// than MaxRangeIterations times in all (nested loops multiplied): such a
// loop writes nothing for seconds or builds gigabytes before any bound on
// the output can stop it.
func checkRanges(root tparse.Node) error {
	return walkRanges(root, 1)
}

func walkRanges(n tparse.Node, outer int64) error {
	switch n := n.(type) {
	case *tparse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := walkRanges(c, outer); err != nil {
				return err
			}
		}
	case *tparse.RangeNode:
		times := outer
		if k, ok := rangeCount(n.Pipe); ok {
			times = outer * max(k, 1)
			if k > MaxRangeIterations || times > MaxRangeIterations {
				return fmt.Errorf("line %d: {{range %d}} runs %d times in all; at most %d loops over a number are allowed",
					n.Line, k, times, MaxRangeIterations)
			}
		}
		if err := walkRanges(n.List, times); err != nil {
			return err
		}
		return walkRanges(n.ElseList, outer)
	case *tparse.IfNode:
		if err := walkRanges(n.List, outer); err != nil {
			return err
		}
		return walkRanges(n.ElseList, outer)
	case *tparse.WithNode:
		if err := walkRanges(n.List, outer); err != nil {
			return err
		}
		return walkRanges(n.ElseList, outer)
	}
	return nil
}

// rangeCount is the number a range pipeline loops over, if it is a literal.
func rangeCount(p *tparse.PipeNode) (int64, bool) {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return 0, false
	}
	num, ok := p.Cmds[0].Args[0].(*tparse.NumberNode)
	if !ok {
		return 0, false
	}
	if num.IsInt {
		return num.Int64, true
	}
	if num.IsFloat && num.Float64 >= 1 {
		return int64(min(num.Float64, 1e18)), true
	}
	return 0, false
}

// checkRecursion rejects templates that call themselves, directly or
// through others ({{define "x"}}{{template "x"}}{{end}}): the engine only
// stops them 100,000 calls deep, after seconds and much memory.
func checkRecursion(trees map[string]*tparse.Tree) error {
	calls := map[string][]string{}
	for name, tr := range trees {
		if tr != nil {
			calls[name] = templateCalls(tr.Root, nil)
		}
	}
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case visiting:
			return fmt.Errorf("template %q calls itself (%s): recursion is not allowed", name, strings.Join(append(path, name), " → "))
		case done:
			return nil
		}
		state[name] = visiting
		for _, c := range calls[name] {
			if err := visit(c, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		return nil
	}
	names := make([]string, 0, len(calls))
	for name := range calls {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := visit(name, nil); err != nil {
			return err
		}
	}
	return nil
}

// templateCalls appends the names of the templates n calls to out.
func templateCalls(n tparse.Node, out []string) []string {
	switch n := n.(type) {
	case *tparse.ListNode:
		if n == nil {
			return out
		}
		for _, c := range n.Nodes {
			out = templateCalls(c, out)
		}
	case *tparse.TemplateNode:
		out = append(out, n.Name)
	case *tparse.RangeNode:
		out = templateCalls(n.List, out)
		out = templateCalls(n.ElseList, out)
	case *tparse.IfNode:
		out = templateCalls(n.List, out)
		out = templateCalls(n.ElseList, out)
	case *tparse.WithNode:
		out = templateCalls(n.List, out)
		out = templateCalls(n.ElseList, out)
	}
	return out
}
