package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// maxAliasDepth bounds alias chains in the YAML tree.
const maxAliasDepth = 64

var (
	topKeys       = []string{"version", "stages", "defaults", "templates_dir", "tiers", "rules"}
	defaultsKeys  = []string{"frequency_cap", "quiet_hours", "holdout", "points_expiring_days", "points_value"}
	ruleKeys      = []string{"name", "on", "schedule", "timezone", "when", "cooldown", "transactional", "frequency_cap", "holdout", "actions"}
	capKeys       = []string{"max", "per"}
	actionKinds   = []string{ActionStage, ActionCoupon, ActionEmail, ActionWebhook, ActionPoints}
	couponKeys    = []string{CouponPercent, CouponAmount, CouponFreeShipping, "expires_in"}
	emailKeys     = []string{"template", "subject"}
	webhookKeys   = []string{"url", "secret"}
	yamlLineRe    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	envRefRe      = regexp.MustCompile(`\$\{([^}]*)\}`)
	envNameRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	quietHoursRe  = regexp.MustCompile(`^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$`)
	exprUnknownRe = regexp.MustCompile(`^unknown name (\S+)$`)
	exprNoFieldRe = regexp.MustCompile(`^type rules\.(Customer|Event) has no field (\S+)$`)
)

// Parse parses, validates and compiles a rules file. filename is used only in
// error messages. On failure it returns a nil set and a *LoadErrors holding
// every error found (not only the first), in file order; warnings of a file
// that loads are in RuleSet.Warnings.
func Parse(filename string, data []byte, opts ParseOptions) (*RuleSet, error) {
	p := &parser{file: filename, data: data, opts: opts}
	rs := p.parse()
	if len(p.errs) > 0 {
		sortLoadErrors(p.errs)
		errs := LoadErrors(p.errs)
		return nil, &errs
	}
	sortLoadErrors(p.warns)
	rs.Warnings = p.warns
	rs.Version = version(data)
	return rs, nil
}

// Check parses a rules file like Parse but does not stop at errors, for
// tools that report problems (`ciclo rules check`): it returns the rule set
// as far as it could be built (rules and actions with errors left out; nil
// when the YAML itself is broken) and every error and warning, in file
// order. The rule set must not be run when any finding is an error.
func Check(filename string, data []byte, opts ParseOptions) (*RuleSet, []*LoadError) {
	p := &parser{file: filename, data: data, opts: opts}
	rs := p.parse()
	all := append(p.errs, p.warns...)
	sortLoadErrors(all)
	if rs != nil {
		rs.Warnings = p.warns
		rs.Version = version(data)
	}
	return rs, all
}

// version is the rule-set version of a file's content.
func version(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:12]
}

// parser holds the state of one Parse call.
type parser struct {
	file  string
	data  []byte
	opts  ParseOptions
	lines []string
	errs  []*LoadError
	warns []*LoadError
}

// keyVal is one entry of a YAML mapping.
type keyVal struct {
	key, val *yaml.Node
}

func (p *parser) add(warning bool, n *yaml.Node, rule, hint, format string, args ...any) {
	e := &LoadError{File: p.file, Line: 1, Column: 1, Rule: rule, Message: fmt.Sprintf(format, args...), Hint: hint, Warning: warning}
	if n != nil && n.Line > 0 {
		e.Line, e.Column = n.Line, n.Column
	}
	if warning {
		p.warns = append(p.warns, e)
	} else {
		p.errs = append(p.errs, e)
	}
}

func (p *parser) errorf(n *yaml.Node, rule, hint, format string, args ...any) {
	p.add(false, n, rule, hint, format, args...)
}

func (p *parser) warnf(n *yaml.Node, rule, hint, format string, args ...any) {
	p.add(true, n, rule, hint, format, args...)
}

func (p *parser) parse() *RuleSet {
	var doc yaml.Node
	if err := yaml.Unmarshal(p.data, &doc); err != nil {
		p.yamlError(err)
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.errorf(nil, "", `start with "version: 1"`, "empty rules file")
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "", "rules file must be a mapping of keys (version, stages, rules, …), got %s", kindName(root))
		return nil
	}
	top := p.mapping(root, "", topKeys, "unknown top-level key %q")

	rs := &RuleSet{Stages: DefaultStages, byName: map[string]*Rule{}}

	if v, ok := top["version"]; ok {
		if n, ok := p.int(v, "", "version"); ok && n != 1 {
			p.errorf(v, "", "this ciclo reads version: 1", "unsupported version %d", n)
		}
	} else {
		p.errorf(root, "", `add "version: 1"`, "missing version")
	}

	var stageNodes []*yaml.Node
	if v, ok := top["stages"]; ok {
		rs.Stages, stageNodes = p.stages(v)
	}

	if v, ok := top["defaults"]; ok {
		rs.Defaults = p.defaults(v)
	}
	if v, ok := top["templates_dir"]; ok {
		rs.TemplateDir, _ = p.str(v, "", "templates_dir")
	}
	if v, ok := top["tiers"]; ok {
		rs.Tiers = p.tiers(v)
	}

	reached := map[string]bool{}
	if v, ok := top["rules"]; ok {
		p.rules(v, rs, reached)
	} else {
		p.errorf(root, "", "", "missing rules")
	}

	// A stage nothing moves customers into is probably a typo or a gap in
	// the lifecycle; the first stage is where customers start, so it is fine.
	// Not said of a file with errors: a broken stage action would make its
	// stage look unreachable too.
	for i, s := range rs.Stages {
		if i == 0 || reached[s] || len(p.errs) > 0 {
			continue
		}
		at := root
		if i < len(stageNodes) {
			at = stageNodes[i]
		}
		p.warnf(at, "", "add a rule with a \"stage: "+s+"\" action or remove the stage", "stage %q is unreachable: no rule moves customers into it", s)
	}
	return rs
}

// yamlError turns a yaml.v3 syntax or structure error into LoadErrors.
func (p *parser) yamlError(err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, msg := range msgs {
		msg = strings.TrimPrefix(msg, "yaml: ")
		e := &LoadError{File: p.file, Line: 1, Column: 1, Message: "invalid YAML: " + msg}
		if m := yamlLineRe.FindStringSubmatch("yaml: " + msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Message = "invalid YAML: " + m[2]
		}
		p.errs = append(p.errs, e)
	}
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

// mapping returns the entries of mapping node n by key, reporting duplicate
// and unknown keys (unknownFormat has one %q verb for the key). n must
// already be resolved.
func (p *parser) mapping(n *yaml.Node, rule string, allowed []string, unknownFormat string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for _, kv := range p.entries(n, rule) {
		k := kv.key.Value
		if !slices.Contains(allowed, k) {
			hint := didYouMean(k, allowed)
			if hint == "" {
				hint = "valid keys: " + strings.Join(allowed, ", ")
			}
			p.errorf(kv.key, rule, hint, unknownFormat, k)
			continue
		}
		out[k] = resolve(kv.val)
	}
	return out
}

// entries lists the key/value pairs of mapping node n, reporting non-scalar
// and duplicate keys.
func (p *parser) entries(n *yaml.Node, rule string) []keyVal {
	var out []keyVal
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, rule, "", "mapping keys must be plain names, got %s", kindName(k))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, rule, "", "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, keyVal{k, v})
	}
	return out
}

// peek returns the scalar value of key in mapping node n, without reporting.
func peek(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k != nil && v != nil && k.Kind == yaml.ScalarNode && k.Value == key && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			return v.Value
		}
	}
	return ""
}

// str reads a non-empty scalar.
func (p *parser) str(n *yaml.Node, rule, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, rule, "", "%s must be a string, got %s", what, kindName(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errorf(n, rule, "", "%s must not be empty", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) int(n *yaml.Node, rule, what string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var v int
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	p.errorf(n, rule, "", "%s must be an integer, got %s", what, kindName(n))
	return 0, false
}

func (p *parser) float(n *yaml.Node, rule, what string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		var v float64
		if err := n.Decode(&v); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	p.errorf(n, rule, "", "%s must be a number, got %s", what, kindName(n))
	return 0, false
}

func (p *parser) bool(n *yaml.Node, rule, what string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	p.errorf(n, rule, "", "%s must be true or false, got %s", what, kindName(n))
	return false, false
}

// duration reads a positive (or, with allowZero, non-negative) duration.
func (p *parser) duration(n *yaml.Node, rule, what string, allowZero bool) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, rule, "", "%s must be a duration such as 14d, got %s", what, kindName(n))
		return 0, false
	}
	d, err := ParseDuration(n.Value)
	if err != nil {
		p.errorf(n, rule, "units: s, m, h, d (days), w (weeks); e.g. 14d, 1w2d, 36h", "%s: %v", what, err)
		return 0, false
	}
	if d < 0 || d == 0 && !allowZero {
		p.errorf(n, rule, "", "%s must be positive, got %s", what, n.Value)
		return 0, false
	}
	return d, true
}

func (p *parser) stages(n *yaml.Node) ([]string, []*yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "", "e.g. stages: [reach, acquisition, conversion]", "stages must be a list, got %s", kindName(n))
		return DefaultStages, nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, "", "remove the key to use the default stages", "stages must not be empty")
		return DefaultStages, nil
	}
	var stages []string
	var nodes []*yaml.Node
	for _, c := range n.Content {
		c = resolve(c)
		s, ok := p.str(c, "", "stage name")
		if !ok {
			continue
		}
		if slices.Contains(stages, s) {
			p.errorf(c, "", "", "duplicate stage %q", s)
			continue
		}
		stages = append(stages, s)
		nodes = append(nodes, c)
	}
	return stages, nodes
}

func (p *parser) defaults(n *yaml.Node) Defaults {
	var d Defaults
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "", "", "defaults must be a mapping, got %s", kindName(n))
		return d
	}
	m := p.mapping(n, "", defaultsKeys, "unknown key %q in defaults")
	if v, ok := m["frequency_cap"]; ok {
		d.FrequencyCap = p.frequencyCap(v, "")
	}
	if v, ok := m["quiet_hours"]; ok {
		d.QuietHours = p.quietHours(v)
	}
	if v, ok := m["holdout"]; ok {
		d.Holdout, _ = p.holdout(v, "")
	}
	if v, ok := m["points_expiring_days"]; ok {
		if i, ok := p.int(v, "", "defaults points_expiring_days"); ok {
			if i < 1 || i > 365 {
				p.errorf(v, "", "e.g. points_expiring_days: 3", "points_expiring_days must be between 1 and 365, got %d", i)
			}
			d.PointsExpiringDays = i
		}
	}
	if v, ok := m["points_value"]; ok {
		if f, ok := p.float(v, "", "defaults points_value"); ok {
			if f <= 0 {
				p.errorf(v, "", "e.g. points_value: 0.01 (currency units per point)", "points_value must be positive, got %s", v.Value)
			}
			d.PointsValue = f
		}
	}
	return d
}

func (p *parser) frequencyCap(n *yaml.Node, rule string) *FrequencyCap {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, "e.g. {max: 3, per: 7d}", "frequency_cap must be a mapping, got %s", kindName(n))
		return nil
	}
	m := p.mapping(n, rule, capKeys, "unknown key %q in frequency_cap")
	fc := &FrequencyCap{}
	if v, ok := m["max"]; ok {
		if i, ok := p.int(v, rule, "frequency_cap max"); ok {
			if i < 1 {
				p.errorf(v, rule, "", "frequency_cap max must be at least 1, got %d", i)
			}
			fc.Max = i
		}
	} else {
		p.errorf(n, rule, "e.g. {max: 3, per: 7d}", "frequency_cap needs max")
	}
	if v, ok := m["per"]; ok {
		fc.Per, _ = p.duration(v, rule, "frequency_cap per", false)
	} else {
		p.errorf(n, rule, "e.g. {max: 3, per: 7d}", "frequency_cap needs per")
	}
	return fc
}

func (p *parser) quietHours(n *yaml.Node) *QuietHours {
	const hint = `e.g. "21:00-08:00" (HH:MM-HH:MM, 24-hour, customer's local time)`
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "", hint, "quiet_hours must be a string, got %s", kindName(n))
		return nil
	}
	m := quietHoursRe.FindStringSubmatch(strings.TrimSpace(n.Value))
	if m == nil {
		p.errorf(n, "", hint, "invalid quiet_hours %q", n.Value)
		return nil
	}
	atoi := func(s string) int { v, _ := strconv.Atoi(s); return v }
	sh, sm, eh, em := atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4])
	if sh > 23 || eh > 23 || sm > 59 || em > 59 {
		p.errorf(n, "", hint, "invalid quiet_hours %q: time of day out of range", n.Value)
		return nil
	}
	q := &QuietHours{
		Start: time.Duration(sh)*time.Hour + time.Duration(sm)*time.Minute,
		End:   time.Duration(eh)*time.Hour + time.Duration(em)*time.Minute,
	}
	if q.Start == q.End {
		p.errorf(n, "", hint, "invalid quiet_hours %q: start and end are equal", n.Value)
		return nil
	}
	return q
}

func (p *parser) rules(n *yaml.Node, rs *RuleSet, reached map[string]bool) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "", "", "rules must be a list, got %s", kindName(n))
		return
	}
	locs := &locationCache{}
	firstAt := map[string]*Rule{}
	for i, c := range n.Content {
		c = resolve(c)
		r := p.rule(c, i, rs, reached)
		if r == nil {
			continue
		}
		r.locs = locs
		if first, dup := firstAt[r.Name]; dup {
			p.errorf(c, r.Name, fmt.Sprintf("first defined at line %d", first.Line), "duplicate rule name")
			continue
		}
		firstAt[r.Name] = r
		rs.Rules = append(rs.Rules, r)
		rs.byName[r.Name] = r
	}
}

// rule parses one rule; nil when it has no usable name.
func (p *parser) rule(n *yaml.Node, idx int, rs *RuleSet, reached map[string]bool) *Rule {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "", "", "rule %d must be a mapping, got %s", idx+1, kindName(n))
		return nil
	}
	name := strings.TrimSpace(peek(n, "name"))
	m := p.mapping(n, name, ruleKeys, "unknown key %q")
	r := &Rule{Name: name, Line: n.Line, Column: n.Column}
	if v, ok := m["name"]; ok {
		p.str(v, "", "rule name")
	} else {
		p.errorf(n, "", "", "rule %d has no name", idx+1)
	}

	if v, ok := m["on"]; ok {
		r.On, _ = p.str(v, name, "on")
	}
	if v, ok := m["schedule"]; ok {
		r.Schedule, _ = p.str(v, name, "schedule")
		if _, on := m["on"]; on {
			p.errorf(m["on"], name, "event rules use on:, time-based sweeps use schedule:; split it into two rules", "a scheduled rule cannot have on:")
		}
	}
	if _, on := m["on"]; !on {
		if _, sch := m["schedule"]; !sch {
			p.errorf(n, name, `add "on: <event type>" or "schedule: <cron>"`, "rule has neither on: nor schedule:")
		}
	}
	loc := time.UTC
	if v, ok := m["timezone"]; ok {
		if tz, ok := p.str(v, name, "timezone"); ok {
			l, err := time.LoadLocation(tz)
			if err != nil || tz == "Local" {
				p.errorf(v, name, `use an IANA name such as "Europe/Berlin"`, "unknown timezone %q", tz)
			} else {
				r.Timezone, loc = tz, l
				if _, sch := m["schedule"]; !sch {
					p.warnf(v, name, "", "timezone has no effect on an event rule")
				}
			}
		}
	}
	if r.Schedule != "" {
		r.schedule = p.cron(m["schedule"], name, r.Schedule, loc)
	}
	if v, ok := m["cooldown"]; ok {
		r.Cooldown, _ = p.duration(v, name, "cooldown", true)
	} else if _, sch := m["schedule"]; sch {
		p.warnf(n, name, `add e.g. "cooldown: 30d"`, "scheduled rule has no cooldown: it would fire on every tick for every matching customer")
	}
	if v, ok := m["transactional"]; ok {
		r.Transactional, _ = p.bool(v, name, "transactional")
	}
	if v, ok := m["frequency_cap"]; ok {
		r.FrequencyCap = p.frequencyCap(v, name)
	}
	if v, ok := m["holdout"]; ok {
		if h, ok := p.holdout(v, name); ok {
			r.Holdout = h
			if r.Transactional {
				p.errorf(v, name, "remove holdout: transactional messages are never held back", "a transactional rule cannot have a holdout")
			}
		}
	} else if !r.Transactional {
		r.Holdout = rs.Defaults.Holdout
	}
	if v, ok := m["when"]; ok {
		p.when(v, r)
	}
	if v, ok := m["actions"]; ok {
		r.Actions, r.actionPos = p.actions(v, name, rs, reached)
	} else {
		p.errorf(n, name, "e.g. actions: [{stage: retention}]", "rule has no actions")
	}
	if name == "" {
		return nil
	}
	return r
}

func (p *parser) cron(n *yaml.Node, rule, spec string, loc *time.Location) cron.Schedule {
	const hint = `5 fields "minute hour day-of-month month day-of-week" or a descriptor such as @daily`
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		p.errorf(n, rule, "use the rule's timezone: key", "schedule must not set a time zone")
		return nil
	}
	sched, err := parseCron(spec)
	if err != nil {
		p.errorf(n, rule, hint, "invalid schedule %q: %v", spec, err)
		return nil
	}
	if ss, ok := sched.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	return sched
}

// parseCron wraps cron.ParseStandard, which panics on some malformed specs.
func parseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return cron.ParseStandard(spec)
}

func (p *parser) when(n *yaml.Node, r *Rule) {
	src, ok := p.str(n, r.Name, "when")
	if !ok {
		return
	}
	r.When = src
	prog, err := expr.Compile(src, expr.Env(env{}), expr.AsBool())
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
			hint = fmt.Sprintf("did you mean %q?", "customer."+m[1])
		} else if slices.Contains(eventFields, m[1]) {
			hint = fmt.Sprintf("did you mean %q?", "event."+m[1])
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

func (p *parser) actions(n *yaml.Node, rule string, rs *RuleSet, reached map[string]bool) ([]Action, []map[string]Pos) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, rule, "e.g. actions: [{stage: retention}]", "actions must be a list, got %s", kindName(n))
		return nil, nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, rule, "e.g. actions: [{stage: retention}]", "rule has no actions")
		return nil, nil
	}
	var out []Action
	var pos []map[string]Pos
	for _, c := range n.Content {
		c = resolve(c)
		if c.Kind != yaml.MappingNode {
			p.errorf(c, rule, "e.g. - stage: retention", "action must be a mapping with one of stage, coupon, email, webhook, got %s", kindName(c))
			continue
		}
		kvs := p.entries(c, rule)
		var kinds []keyVal
		for _, kv := range kvs {
			if !slices.Contains(actionKinds, kv.key.Value) {
				hint := didYouMean(kv.key.Value, actionKinds)
				if hint == "" {
					hint = "actions are: " + strings.Join(actionKinds, ", ")
				}
				p.errorf(kv.key, rule, hint, "unknown action %q", kv.key.Value)
				continue
			}
			kinds = append(kinds, kv)
		}
		if len(kinds) > 1 {
			names := make([]string, len(kinds))
			for i, k := range kinds {
				names[i] = k.key.Value
			}
			p.errorf(kinds[1].key, rule, "write each as its own list item", "action has more than one kind (%s)", strings.Join(names, ", "))
			continue
		}
		if len(kinds) == 0 {
			if len(kvs) == 0 {
				p.errorf(c, rule, "actions are: "+strings.Join(actionKinds, ", "), "empty action")
			}
			continue
		}
		if a, ok := p.action(kinds[0].key.Value, resolve(kinds[0].val), rule, rs, reached); ok {
			out = append(out, a)
			pos = append(pos, actionPositions(kinds[0]))
		}
	}
	return out, pos
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

func (p *parser) action(kind string, v *yaml.Node, rule string, rs *RuleSet, reached map[string]bool) (Action, bool) {
	switch kind {
	case ActionStage:
		s, ok := p.str(v, rule, "stage")
		if !ok {
			return Action{}, false
		}
		if !slices.Contains(rs.Stages, s) {
			hint := didYouMean(s, rs.Stages)
			if hint == "" {
				hint = "stages are: " + strings.Join(rs.Stages, ", ")
			}
			p.errorf(v, rule, hint, "unknown stage %q", s)
			return Action{}, false
		}
		reached[s] = true
		return Action{Stage: s}, true
	case ActionCoupon:
		c := p.coupon(v, rule)
		return Action{Coupon: c}, c != nil
	case ActionEmail:
		e := p.email(v, rule)
		return Action{Email: e}, e != nil
	case ActionPoints:
		a := p.points(v, rule)
		return Action{Points: a}, a != nil
	default:
		w := p.webhook(v, rule)
		return Action{Webhook: w}, w != nil
	}
}

func (p *parser) coupon(n *yaml.Node, rule string) *CouponAction {
	const hint = "e.g. {percent: 10, expires_in: 14d}, {amount: 5, expires_in: 30d} or {free_shipping: true, expires_in: 7d}"
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, hint, "coupon must be a mapping, got %s", kindName(n))
		return nil
	}
	errsBefore := len(p.errs)
	m := p.mapping(n, rule, couponKeys, "unknown key %q in coupon")
	var kinds []string
	for _, k := range []string{CouponPercent, CouponAmount, CouponFreeShipping} {
		if _, ok := m[k]; ok {
			kinds = append(kinds, k)
		}
	}
	c := &CouponAction{}
	switch len(kinds) {
	case 0:
		p.errorf(n, rule, hint, "coupon needs one of percent, amount or free_shipping")
	case 1:
		c.Kind = kinds[0]
		v := m[c.Kind]
		switch c.Kind {
		case CouponPercent:
			if f, ok := p.float(v, rule, "coupon percent"); ok {
				if f <= 0 || f > 100 {
					p.errorf(v, rule, "", "coupon percent must be in (0, 100], got %s", v.Value)
				}
				c.Value = f
			}
		case CouponAmount:
			if f, ok := p.float(v, rule, "coupon amount"); ok {
				if f <= 0 {
					p.errorf(v, rule, "", "coupon amount must be positive, got %s", v.Value)
				}
				c.Value = f
			}
		default:
			if b, ok := p.bool(v, rule, "coupon free_shipping"); ok && !b {
				p.errorf(v, rule, "remove the coupon action instead", "coupon free_shipping must be true")
			}
		}
	default:
		p.errorf(m[kinds[1]], rule, "one kind per coupon", "coupon has both %s and %s", kinds[0], kinds[1])
	}
	if v, ok := m["expires_in"]; ok {
		c.ExpiresIn, _ = p.duration(v, rule, "coupon expires_in", false)
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return c
}

func (p *parser) email(n *yaml.Node, rule string) *EmailAction {
	const hint = `e.g. {template: win_back, subject: "We miss you"}`
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, hint, "email must be a mapping, got %s", kindName(n))
		return nil
	}
	errsBefore := len(p.errs)
	m := p.mapping(n, rule, emailKeys, "unknown key %q in email")
	e := &EmailAction{}
	if v, ok := m["template"]; ok {
		if t, ok := p.str(v, rule, "email template"); ok {
			e.Template = t
			if p.opts.Templates != nil && !slices.Contains(p.opts.Templates, t) {
				hint := didYouMean(t, p.opts.Templates)
				if hint == "" && len(p.opts.Templates) > 0 {
					hint = "templates are: " + strings.Join(p.opts.Templates, ", ")
				}
				p.errorf(v, rule, hint, "unknown email template %q", t)
			}
		}
	} else {
		p.errorf(n, rule, hint, "email needs a template")
	}
	if v, ok := m["subject"]; ok {
		e.Subject, _ = p.str(v, rule, "email subject")
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return e
}

func (p *parser) webhook(n *yaml.Node, rule string) *WebhookAction {
	const hint = `e.g. {url: "${CRM_WEBHOOK_URL}", secret: "${CRM_WEBHOOK_SECRET}"}`
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, hint, "webhook must be a mapping, got %s", kindName(n))
		return nil
	}
	errsBefore := len(p.errs)
	m := p.mapping(n, rule, webhookKeys, "unknown key %q in webhook")
	w := &WebhookAction{}
	if v, ok := m["url"]; ok {
		if raw, ok := p.str(v, rule, "webhook url"); ok {
			if s, ok := p.expand(v, rule, "webhook url", raw); ok && !envRefRe.MatchString(s) {
				// Report the raw value: the expanded one may hold a token.
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					p.errorf(v, rule, "e.g. https://crm.example.com/hooks/ciclo", "webhook url must be an absolute http(s) URL, got %q", raw)
				}
				w.URL = s
			}
		}
	} else {
		p.errorf(n, rule, hint, "webhook needs a url")
	}
	if v, ok := m["secret"]; ok {
		if raw, ok := p.str(v, rule, "webhook secret"); ok {
			w.Secret, _ = p.expand(v, rule, "webhook secret", raw)
		}
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return w
}

// expand replaces ${NAME} references in s (the value of what) through
// opts.LookupEnv, reporting each reference it cannot resolve: an error, or
// with opts.AllowMissingEnv a warning, the reference then staying in the
// value. A malformed reference is always an error.
func (p *parser) expand(n *yaml.Node, rule, what, s string) (string, bool) {
	ok := true
	out := envRefRe.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if !envNameRe.MatchString(name) {
			p.errorf(n, rule, "names are letters, digits and _", "%s: invalid reference %s", what, ref)
			ok = false
			return ref
		}
		if p.opts.LookupEnv != nil {
			if v, found := p.opts.LookupEnv(name); found {
				return v
			}
		}
		if p.opts.AllowMissingEnv {
			p.warnf(n, rule, "set it where ciclo runs; ciclo serve refuses the file without it",
				"%s: environment variable %s is not set here, so the value is not checked", what, name)
			return ref
		}
		p.errorf(n, rule, "set the environment variable "+name+", or check the file with --allow-missing-env",
			"%s: environment variable %s is not set", what, name)
		ok = false
		return ref
	})
	return out, ok
}
