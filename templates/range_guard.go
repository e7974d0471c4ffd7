package templates

import (
	"fmt"
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
