package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// maxAliasDepth bounds alias chains in the YAML tree.
const maxAliasDepth = 64

// Bounds on a rules file. Rules files are written by people; a file over
// these is a mistake or an attack, and parsing it would take minutes and
// gigabytes (a 20 MB file of 200,000 rules took 5 minutes and 7.7 GB of
// allocations), so it is refused before parsing.
const (
	// MaxFileBytes caps a rules file's size: 1 MiB.
	MaxFileBytes = 1 << 20
	// MaxRules caps the rules of a file.
	MaxRules = 1000
)

var (
	topKeys       = []string{"version", "stages", "defaults", "templates_dir", "tiers", "rules"}
	defaultsKeys  = []string{"frequency_cap", "quiet_hours", "holdout", "points_expiring_days", "points_value"}
	ruleKeys      = []string{"name", "on", "schedule", "timezone", "when", "cooldown", "transactional", "frequency_cap", "holdout", "actions", "key", "exit", "reentry"}
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
	rs.Source = data
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
	// pendingEvents are event types journeys name, checked once all rules are read.
	pendingEvents []pendingEvent
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
	if len(p.data) > MaxFileBytes {
		p.errorf(nil, "", "split the rules or remove unused ones", "rules file is larger than %d bytes (%d MiB)", MaxFileBytes, MaxFileBytes>>20)
		return nil
	}
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
		p.checkEvents(rs)
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
	if len(n.Content) > MaxRules {
		p.errorf(n, "", "merge rules that differ only in their condition, or remove unused ones", "%d rules, over the limit of %d", len(n.Content), MaxRules)
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
	if v, ok := m["actions"]; ok && isJourney(v) {
		p.journey(m, r, rs, reached)
	} else if ok {
		r.Actions, r.actionPos = p.actions(v, name, rs, reached)
		for _, k := range []string{"key", "exit", "reentry"} {
			if kv, ok := m[k]; ok {
				p.warnf(kv, name, "add a wait, wait_for or if step, or remove it", "%s has no effect on a rule without steps that take time", k)
			}
		}
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
