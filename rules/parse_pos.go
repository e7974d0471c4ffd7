package rules

import (
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// exprPos maps a rune offset in the scalar value of n to a 1-based file line
// and column, following the scalar's style (plain, quoted, block).
func (p *parser) exprPos(n *yaml.Node, off int) (int, int) {
	if p.lines == nil {
		p.lines = strings.Split(strings.ReplaceAll(string(p.data), "\r\n", "\n"), "\n")
	}
	if off < 0 || n.Line < 1 || n.Line > len(p.lines) {
		return n.Line, n.Column
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		// Content starts on the line after the indicator, indented by the
		// indentation of its first non-blank line.
		indent := -1
		for i := n.Line; i < len(p.lines); i++ {
			if strings.TrimSpace(p.lines[i]) != "" {
				indent = len(p.lines[i]) - len(strings.TrimLeft(p.lines[i], " "))
				break
			}
		}
		if indent < 0 {
			return n.Line, n.Column
		}
		for i := n.Line; i < len(p.lines); i++ {
			content := ""
			if len(p.lines[i]) > indent {
				content = p.lines[i][indent:]
			}
			rl := utf8.RuneCountInString(content)
			if off <= rl {
				return i + 1, indent + off + 1
			}
			off -= rl + 1
		}
		return n.Line, n.Column
	}
	start := n.Column - 1 // 0-based rune column of the value's first character
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		start++
	}
	for i := n.Line - 1; i < len(p.lines); i++ {
		line := []rune(p.lines[i])
		from := 0
		if i == n.Line-1 {
			from = min(start, len(line))
		} else {
			for from < len(line) && (line[from] == ' ' || line[from] == '\t') {
				from++
			}
		}
		rl := len(line) - from
		if off <= rl {
			return i + 1, from + off + 1
		}
		off -= rl + 1
	}
	return n.Line, n.Column
}

// actionPositions records where an action and the values of its mapping
// keys are written, for errors found after Parse (see Rule.ActionPos).
func actionPositions(kv keyVal) map[string]Pos {
	m := map[string]Pos{"": {kv.key.Line, kv.key.Column}}
	v := resolve(kv.val)
	if v.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(v.Content); i += 2 {
			if val := resolve(v.Content[i+1]); val != nil {
				m[v.Content[i].Value] = Pos{val.Line, val.Column}
			}
		}
	}
	return m
}
