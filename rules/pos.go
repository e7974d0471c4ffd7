package rules

// Pos is a 1-based line and column in a rules file.
type Pos struct {
	Line, Column int
}

// ActionPos returns where action i of the rule is written in the file, or,
// with a key such as "template" or "subject", where the value of that key
// of the action's mapping is. It falls back to the action, then to the
// rule, so callers that check actions after Parse (e.g. rendering email
// templates) can report file:line:col errors.
func (r *Rule) ActionPos(i int, key string) Pos {
	if i < 0 || i >= len(r.actionPos) {
		return Pos{r.Line, r.Column}
	}
	if p, ok := r.actionPos[i][key]; ok {
		return p
	}
	return r.actionPos[i][""]
}
