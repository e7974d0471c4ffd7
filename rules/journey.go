package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// Step kinds, as written in a rule's actions besides the immediate actions.
const (
	StepWait      = "wait"
	StepWaitUntil = "wait_until"
	StepWaitFor   = "wait_for"
	StepIf        = "if"
	StepExit      = "exit"
)

// ReentryAllow is the `reentry:` value that lets a customer be in several
// runs of a journey for the same key at once.
const ReentryAllow = "allow"

// Op is the kind of one journey instruction.
type Op int

// Journey instructions. A journey's steps are compiled into a flat list of
// instructions, so that a run's position is one number (its pc).
const (
	// OpAction runs Rule.Actions[ActionIndex] at once.
	OpAction Op = iota + 1
	// OpWait waits Wait, then goes on at pc+1.
	OpWait
	// OpWaitUntil waits until the next local time Until, then pc+1.
	OpWaitUntil
	// OpWaitFor waits for an event WaitFor; when it comes in time the run
	// goes on at pc+1, at its timeout at Target.
	OpWaitFor
	// OpJumpUnless goes to Target unless Cond holds (if/else).
	OpJumpUnless
	// OpJump goes to Target.
	OpJump
	// OpExit ends the run.
	OpExit
)

var (
	stepKinds    = []string{StepWait, StepWaitUntil, StepWaitFor, StepIf, StepExit}
	waitForKeys  = []string{"event", "when", "within", "on_timeout"}
	waitUntilRe  = regexp.MustCompile(`^(\d{1,2}):(\d{2})$`)
	exitKeys     = []string{"on", "when"}
	weekdayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
)

// Run is a journey run as expressions see it: run.key in a rule's exit
// `when` and a wait_for `when`.
type Run struct {
	// Key is the run's correlation key (the rule's `key:` value at start,
	// "" when the rule has none).
	Key string `expr:"key"`
}

// Journey is the compiled step list of a rule whose actions take time.
type Journey struct {
	// Instrs are the steps compiled to instructions; a run starts at 0 and
	// ends when its pc reaches len(Instrs).
	Instrs []Instr
	// KeySrc is the `key:` expression; "" means one run per customer.
	KeySrc string
	// ExitOn is the event type that ends a run early; "" means none.
	ExitOn string
	// ExitWhen is the condition on that event; "" means any such event.
	ExitWhen string
	// Reentry is "" (one active run per customer and key), ReentryAllow,
	// or a cooldown as ReentryCooldown.
	Reentry string
	// ReentryCooldown, when set, refuses a new run for a customer and key
	// that started one less than this long ago.
	ReentryCooldown time.Duration

	key  *vm.Program
	exit *vm.Program
}

// Instr is one journey instruction (see Op).
type Instr struct {
	Op Op
	// ActionIndex is the index in Rule.Actions of an OpAction.
	ActionIndex int
	// Wait is the duration of an OpWait, or the `within` of an OpWaitFor.
	Wait time.Duration
	// Until is the local time of day (since midnight) of an OpWaitUntil.
	Until time.Duration
	// Weekdays, if any, restrict an OpWaitUntil to those days.
	Weekdays []time.Weekday
	// Event is the event type an OpWaitFor waits for.
	Event string
	// Cond is the source of an OpJumpUnless condition or an OpWaitFor `when`.
	Cond string
	// Target is the pc of a jump, or of an OpWaitFor's timeout branch.
	Target int
	// Line and Column locate the step in the rules file.
	Line, Column int

	cond *vm.Program
}

// Describe returns a short human description of the instruction.
func (in Instr) Describe(r *Rule) string {
	switch in.Op {
	case OpAction:
		a := r.Actions[in.ActionIndex]
		switch {
		case a.Email != nil:
			return "email " + a.Email.Template
		case a.Coupon != nil:
			return fmt.Sprintf("coupon %s %g", a.Coupon.Kind, a.Coupon.Value)
		case a.Stage != "":
			return "stage " + a.Stage
		}
		return a.Kind()
	case OpWait:
		return "wait " + in.Wait.String()
	case OpWaitUntil:
		return fmt.Sprintf("wait until %02d:%02d", int(in.Until.Hours()), int(in.Until.Minutes())%60)
	case OpWaitFor:
		return fmt.Sprintf("wait for %s within %s", in.Event, in.Wait)
	case OpJumpUnless:
		return "if " + in.Cond
	case OpJump:
		return "jump"
	case OpExit:
		return "exit"
	}
	return "?"
}

// IsJourney reports whether the rule's actions take time (it runs as a
// journey: a run per customer and key, step by step).
func (r *Rule) IsJourney() bool { return r.Journey != nil }

// RunKey evaluates the rule's `key:` for a starting event; "" when the rule
// has none.
func (r *Rule) RunKey(in Input) (string, error) {
	if r.Journey == nil || r.Journey.key == nil {
		return "", nil
	}
	out, err := expr.Run(r.Journey.key, newEnv(in, r.locs))
	if err != nil {
		return "", fmt.Errorf("rule %q: key: %w", r.Name, err)
	}
	if out == nil {
		return "", nil
	}
	return fmt.Sprint(out), nil
}

// Exits reports whether an event in (for a run with key) ends the run.
func (r *Rule) Exits(in Input) (bool, error) {
	j := r.Journey
	if j == nil || j.ExitOn == "" || in.Event == nil || in.Event.Type != j.ExitOn {
		return false, nil
	}
	return r.runBool(j.exit, in, "exit")
}

// Holds evaluates the condition of instruction pc (an if or a wait_for
// `when`) for in; true when it has none.
func (r *Rule) Holds(pc int, in Input) (bool, error) {
	return r.runBool(r.Journey.Instrs[pc].cond, in, "step "+strconv.Itoa(pc))
}

func (r *Rule) runBool(prog *vm.Program, in Input, what string) (bool, error) {
	if prog == nil {
		return true, nil
	}
	out, err := expr.Run(prog, newEnv(in, r.locs))
	if err != nil {
		return false, fmt.Errorf("rule %q: %s: %w", r.Name, what, err)
	}
	b, _ := out.(bool)
	return b, nil
}

// NextLocal returns the next instant after now at the instruction's local
// time of day (an OpWaitUntil) in time zone tz ("" or invalid: UTC), on one
// of its weekdays if any.
func (in Instr) NextLocal(now time.Time, tz string, locs func(string) *time.Location) time.Time {
	loc := locs(tz)
	l := now.In(loc)
	for d := 0; d < 8; d++ {
		day := time.Date(l.Year(), l.Month(), l.Day()+d, 0, 0, 0, 0, loc)
		t := day.Add(in.Until)
		if !t.After(now) {
			continue
		}
		if len(in.Weekdays) > 0 && !slices.Contains(in.Weekdays, t.Weekday()) {
			continue
		}
		return t
	}
	return now.Add(in.Until)
}

// Location resolves a customer time zone as the rule set does (invalid or
// empty: UTC).
func (r *Rule) Location(tz string) *time.Location { return r.locs.load(tz) }

// isJourney reports whether an actions list has a step that takes time or
// branches.
func isJourney(n *yaml.Node) bool {
	if n.Kind != yaml.SequenceNode {
		return false
	}
	for _, c := range n.Content {
		c = resolve(c)
		if c.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i < len(c.Content); i += 2 {
			if slices.Contains(stepKinds, c.Content[i].Value) {
				return true
			}
		}
	}
	return false
}

// journey parses a rule's journey keys and steps.
func (p *parser) journey(m map[string]*yaml.Node, r *Rule, rs *RuleSet, reached map[string]bool) {
	j := &Journey{}
	r.Journey = j
	if r.On == "" {
		p.errorf(m["actions"], r.Name, "start it with on: <event type>", "a journey (wait, wait_for, if, …) must start on an event")
	}
	if v, ok := m["key"]; ok {
		if src, ok := p.str(v, r.Name, "key"); ok {
			j.KeySrc = src
			j.key = p.compile(v, r.Name, "key", src, false)
		}
	}
	if v, ok := m["exit"]; ok {
		if v.Kind != yaml.MappingNode {
			p.errorf(v, r.Name, `e.g. exit: { on: order_placed, when: "event.properties.checkout_id == run.key" }`, "exit must be a mapping, got %s", kindName(v))
		} else {
			em := p.mapping(v, r.Name, exitKeys, "unknown key %q in exit")
			if on, ok := em["on"]; ok {
				j.ExitOn, _ = p.str(on, r.Name, "exit on")
				p.knownEvent(on, r.Name, j.ExitOn, rs)
			} else {
				p.errorf(v, r.Name, "e.g. exit: { on: order_placed }", "exit needs on: <event type>")
			}
			if w, ok := em["when"]; ok {
				if src, ok := p.str(w, r.Name, "exit when"); ok {
					j.ExitWhen = src
					j.exit = p.compile(w, r.Name, "exit when", src, true)
				}
			}
		}
	}
	if v, ok := m["reentry"]; ok {
		if s, ok := p.str(v, r.Name, "reentry"); ok {
			if s == ReentryAllow {
				j.Reentry = s
			} else if d, err := ParseDuration(s); err == nil && d > 0 {
				j.Reentry, j.ReentryCooldown = s, d
			} else {
				p.errorf(v, r.Name, `reentry: allow, or a cooldown such as 7d`, "invalid reentry %q", s)
			}
		}
	}
	c := &stepCompiler{p: p, r: r, rs: rs, reached: reached}
	c.steps(m["actions"])
	j.Instrs = c.out
}

// knownEvent warns when no rule starts on the event type named by n; it is
// then probably misspelt (known names come from `on:` of all rules).
func (p *parser) knownEvent(n *yaml.Node, rule, ev string, rs *RuleSet) {
	if ev == "" {
		return
	}
	p.pendingEvents = append(p.pendingEvents, pendingEvent{n, rule, ev})
}

type pendingEvent struct {
	n          *yaml.Node
	rule, name string
}

// knownEventTypes are event types ciclo itself or its integrations emit.
var knownEventTypes = []string{"order_placed", "order_delivered", "signed_up", "checkout_started", "cart_updated", "coupon_expired", "nps_answered", "page_viewed", "subscribed"}

// checkEvents reports the event types journeys name that no rule and no
// integration produces (called once all rules are read).
func (p *parser) checkEvents(rs *RuleSet) {
	known := slices.Clone(knownEventTypes)
	for _, r := range rs.Rules {
		if r.On != "" {
			known = append(known, r.On)
		}
	}
	for _, e := range p.pendingEvents {
		if !slices.Contains(known, e.name) {
			hint := didYouMean(e.name, known)
			if hint == "" {
				hint = "no rule starts on it and ciclo knows no such event; check the spelling"
			}
			p.warnf(e.n, e.rule, hint, "unknown event %q", e.name)
		}
	}
}

// compile compiles a journey expression (key, exit when, if, wait_for when).
func (p *parser) compile(n *yaml.Node, rule, what, src string, asBool bool) *vm.Program {
	var opts []expr.Option
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := compileExpr(src, opts...)
	if err != nil {
		var fe *file.Error
		if !errors.As(err, &fe) {
			p.errorf(n, rule, "", "%s must be a boolean expression", what)
			return nil
		}
		msg, hint := exprMessage(strings.TrimSpace(fe.Message))
		e := &LoadError{File: p.file, Rule: rule, Message: what + ": " + msg, Hint: hint}
		e.Line, e.Column = p.exprPos(n, fe.From)
		p.errs = append(p.errs, e)
		return nil
	}
	return prog
}

type stepCompiler struct {
	p       *parser
	r       *Rule
	rs      *RuleSet
	reached map[string]bool
	out     []Instr
}

func (c *stepCompiler) emit(in Instr, at *yaml.Node) int {
	if at != nil {
		in.Line, in.Column = at.Line, at.Column
	}
	c.out = append(c.out, in)
	return len(c.out) - 1
}

// steps compiles a list of steps; it reports whether the list ends in an
// unconditional exit.
func (c *stepCompiler) steps(n *yaml.Node) bool {
	p, rule := c.p, c.r.Name
	if n == nil {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, rule, "e.g. - wait: 1h", "steps must be a list, got %s", kindName(n))
		return false
	}
	if len(n.Content) == 0 {
		p.errorf(n, rule, "e.g. - email: { template: reminder }", "empty list of steps")
		return false
	}
	exited := false
	for _, s := range n.Content {
		s = resolve(s)
		if exited {
			p.errorf(s, rule, "remove it, or make the exit conditional (if: …)", "unreachable step: it follows an exit")
			return true
		}
		if s.Kind != yaml.MappingNode {
			p.errorf(s, rule, "e.g. - wait: 1h", "step must be a mapping, got %s", kindName(s))
			continue
		}
		exited = c.step(s)
	}
	return exited
}

func (c *stepCompiler) step(s *yaml.Node) bool {
	p, rule := c.p, c.r.Name
	kvs := p.entries(s, rule)
	if len(kvs) == 0 {
		p.errorf(s, rule, "", "empty step")
		return false
	}
	first := kvs[0]
	k, v := first.key.Value, resolve(first.val)
	if k == StepIf {
		return c.ifStep(s, kvs)
	}
	if len(kvs) > 1 {
		p.errorf(kvs[1].key, rule, "write each as its own list item", "step has more than one kind (%s, %s)", k, kvs[1].key.Value)
		return false
	}
	switch k {
	case StepWait:
		if d, ok := p.duration(v, rule, "wait", false); ok {
			c.emit(Instr{Op: OpWait, Wait: d}, first.key)
		}
	case StepWaitUntil:
		c.waitUntil(first.key, v)
	case StepWaitFor:
		c.waitFor(first.key, v)
	case StepExit:
		c.emit(Instr{Op: OpExit}, first.key)
		return true
	default:
		if !slices.Contains(actionKinds, k) {
			all := append(slices.Clone(actionKinds), stepKinds...)
			hint := didYouMean(k, all)
			if hint == "" {
				hint = "steps are: " + strings.Join(all, ", ")
			}
			p.errorf(first.key, rule, hint, "unknown step %q", k)
			return false
		}
		a, ok := p.action(k, v, rule, c.rs, c.reached)
		if !ok {
			return false
		}
		c.r.Actions = append(c.r.Actions, a)
		c.r.actionPos = append(c.r.actionPos, actionPositions(first))
		c.emit(Instr{Op: OpAction, ActionIndex: len(c.r.Actions) - 1}, first.key)
	}
	return false
}

func (c *stepCompiler) ifStep(s *yaml.Node, kvs []keyVal) bool {
	p, rule := c.p, c.r.Name
	m := p.mapping(s, rule, []string{"if", "then", "else"}, "unknown key %q in if step")
	cond, ok := p.str(m["if"], rule, "if")
	var prog *vm.Program
	if ok {
		prog = p.compile(m["if"], rule, "if", cond, true)
	}
	then, hasThen := m["then"]
	if !hasThen {
		p.errorf(kvs[0].key, rule, `e.g. then: [{ email: { template: x } }]`, "if needs then:")
	}
	jump := c.emit(Instr{Op: OpJumpUnless, Cond: cond, cond: prog}, kvs[0].key)
	thenExit := c.steps(then)
	els, hasElse := m["else"]
	if !hasElse {
		c.out[jump].Target = len(c.out)
		return false
	}
	over := c.emit(Instr{Op: OpJump}, els)
	c.out[jump].Target = len(c.out)
	elseExit := c.steps(els)
	c.out[over].Target = len(c.out)
	return thenExit && elseExit
}

func (c *stepCompiler) waitUntil(at, v *yaml.Node) {
	p, rule := c.p, c.r.Name
	const hint = `e.g. wait_until: "10:00", or wait_until: { time: "10:00", weekdays: [mon, tue] }`
	in := Instr{Op: OpWaitUntil}
	tv := v
	if v.Kind == yaml.MappingNode {
		m := p.mapping(v, rule, []string{"time", "weekdays"}, "unknown key %q in wait_until")
		tv = m["time"]
		if tv == nil {
			p.errorf(v, rule, hint, "wait_until needs a time")
			return
		}
		if wd, ok := m["weekdays"]; ok {
			if wd.Kind != yaml.SequenceNode {
				p.errorf(wd, rule, hint, "weekdays must be a list, got %s", kindName(wd))
				return
			}
			for _, d := range wd.Content {
				i := slices.Index(weekdayNames, strings.ToLower(strings.TrimSpace(d.Value))[:min(3, len(d.Value))])
				if d.Kind != yaml.ScalarNode || i < 0 {
					p.errorf(d, rule, "weekdays: mon, tue, wed, thu, fri, sat, sun", "unknown weekday %q", d.Value)
					return
				}
				in.Weekdays = append(in.Weekdays, time.Weekday(i))
			}
		}
	}
	mm := waitUntilRe.FindStringSubmatch(tv.Value)
	if tv.Kind != yaml.ScalarNode || mm == nil {
		p.errorf(tv, rule, hint, "wait_until: invalid time %q, want HH:MM", tv.Value)
		return
	}
	h, _ := strconv.Atoi(mm[1])
	mi, _ := strconv.Atoi(mm[2])
	if h > 23 || mi > 59 {
		p.errorf(tv, rule, hint, "wait_until: invalid time %q, want HH:MM", tv.Value)
		return
	}
	in.Until = time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute
	c.emit(in, at)
}

func (c *stepCompiler) waitFor(at, v *yaml.Node) {
	p, rule := c.p, c.r.Name
	const hint = "e.g. wait_for: { event: cart_updated, within: 1d }"
	if v.Kind != yaml.MappingNode {
		p.errorf(v, rule, hint, "wait_for must be a mapping, got %s", kindName(v))
		return
	}
	m := p.mapping(v, rule, waitForKeys, "unknown key %q in wait_for")
	in := Instr{Op: OpWaitFor}
	if e, ok := m["event"]; ok {
		in.Event, _ = p.str(e, rule, "wait_for event")
		p.knownEvent(e, rule, in.Event, c.rs)
	} else {
		p.errorf(v, rule, hint, "wait_for needs an event")
	}
	if w, ok := m["within"]; ok {
		in.Wait, _ = p.duration(w, rule, "wait_for within", false)
	} else {
		p.errorf(v, rule, "add within: 1d (how long to wait before the timeout branch)", "wait_for without within would wait forever")
	}
	if w, ok := m["when"]; ok {
		if src, ok := p.str(w, rule, "wait_for when"); ok {
			in.Cond = src
			in.cond = p.compile(w, rule, "wait_for when", src, true)
		}
	}
	pc := c.emit(in, at)
	over := c.emit(Instr{Op: OpJump}, at)
	c.out[pc].Target = len(c.out)
	if t, ok := m["on_timeout"]; ok {
		c.steps(t)
	}
	c.out[over].Target = len(c.out)
}
