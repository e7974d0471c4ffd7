// Package rules turns a ciclo rules file (YAML) into a validated, compiled
// RuleSet and evaluates its rules against a customer and an event.
//
// Every `when` expression is compiled once, at Parse, against a typed
// environment (see Input), so a misspelt field, a misused helper or a
// non-boolean condition is a load error with file, line, column and rule name,
// never a runtime surprise. The package is pure: no I/O besides reading time
// zone data through time.LoadLocation, no clock (callers pass Input.Now).
package rules

import (
	"errors"
	"fmt"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/robfig/cron/v3"
	_ "time/tzdata" // time zones resolve the same on every host
)

// Action kinds, as written in the rules file.
const (
	ActionStage   = "stage"
	ActionCoupon  = "coupon"
	ActionEmail   = "email"
	ActionWebhook = "webhook"
)

// Coupon kinds (CouponAction.Kind).
const (
	CouponPercent      = "percent"
	CouponAmount       = "amount"
	CouponFreeShipping = "free_shipping"
)

// DefaultStages are the lifecycle stages used when the rules file has no
// `stages:` key: the classic five plus at_risk and churned.
var DefaultStages = []string{"reach", "acquisition", "conversion", "retention", "loyalty", "at_risk", "churned"}

// ParseOptions configures Parse. The zero value expands no ${NAME} references
// (each one is then a "not set" error) and does not check template names.
type ParseOptions struct {
	// LookupEnv resolves ${NAME} in webhook url and secret values, typically
	// os.LookupEnv. Nil means no expansion: any ${NAME} is an error.
	LookupEnv func(string) (string, bool)
	// AllowMissingEnv makes a ${NAME} that LookupEnv cannot resolve a
	// warning instead of an error; the reference stays in the value, which
	// is then not validated. For checking a file away from its secrets
	// (`rules check --allow-missing-env`); never for running it.
	AllowMissingEnv bool
	// Templates lists the known email template names. Nil means template
	// names are not checked; non-nil (even empty) means they must be listed.
	Templates []string
}

// RuleSet is a parsed, validated and compiled rules file. It is immutable and
// safe for concurrent use.
type RuleSet struct {
	// Version identifies the content: the first 12 hex characters of the
	// SHA-256 of the file's bytes. Firings and transitions record it.
	Version string
	// Stages are the lifecycle stages in file order; DefaultStages when the
	// file has no `stages:` key. The first one is where customers start.
	Stages []string
	// Defaults are the file's `defaults:` section.
	Defaults Defaults
	// TemplateDir is the optional `templates_dir:` value: a directory of
	// template overrides, relative to the rules file, as written (the caller
	// resolves it). Empty when absent.
	TemplateDir string
	// Tiers are the loyalty tiers, lowest first; nil when the file has none.
	Tiers []Tier
	// Rules are the rules in file order.
	Rules []*Rule
	// Warnings are problems that do not stop the file from loading, such as
	// a scheduled rule without cooldown or an unreachable stage.
	Warnings []*LoadError
	// Source is the file's content, kept so that journey runs can go on
	// on the version they started with after a reload.
	Source []byte

	byName map[string]*Rule
}

// Rule is one compiled rule. Exactly one of On and Schedule is set.
type Rule struct {
	// Name is the rule's unique name.
	Name string
	// On is the event type that triggers the rule; "" for scheduled rules.
	On string
	// Schedule is the cron spec (5 fields or a descriptor such as @daily) of
	// a scheduled rule; "" for event rules.
	Schedule string
	// Timezone is the IANA zone Schedule is read in; "" means UTC.
	Timezone string
	// When is the condition's expr source; "" means always true.
	When string
	// Cooldown is the minimum time between two firings for one customer;
	// 0 means none.
	Cooldown time.Duration
	// Transactional rules bypass frequency cap and quiet hours.
	Transactional bool
	// FrequencyCap overrides Defaults.FrequencyCap for this rule; nil means
	// use the default.
	FrequencyCap *FrequencyCap
	// Holdout is the share (0..0.5) of matching customers the rule leaves
	// untouched as a control group (see HeldOut); Defaults.Holdout when the
	// rule sets none, 0 for transactional rules.
	Holdout float64
	// Actions run in order when the rule fires. For a journey they are all
	// the actions of its steps, in file order (Journey's OpAction
	// instructions index them).
	Actions []Action
	// Journey is set when the rule's actions take time (wait, wait_until,
	// wait_for, if, exit): it then starts a run per customer and key.
	Journey *Journey
	// Line and Column are the 1-based position of the rule in the file.
	Line, Column int
	// Fields are the customer fields (expr names) that When reads, sorted
	// and unique, e.g. ["last_order_at", "stage"]. local_hour() counts as
	// reading "timezone". Sweeps use it to select only those columns.
	Fields []string

	program   *vm.Program
	schedule  cron.Schedule
	locs      *locationCache
	actionPos []map[string]Pos // per action: "" → the action, key → its value
}

// Action is one thing a rule does. Exactly one field is set.
type Action struct {
	// Stage moves the customer into this stage.
	Stage string
	// Coupon issues a coupon.
	Coupon *CouponAction
	// Email sends a marketing (or transactional) email.
	Email *EmailAction
	// Webhook posts the firing to a URL.
	Webhook *WebhookAction
	// Points grants loyalty points.
	Points *PointsAction
}

// Kind returns the action's kind: ActionStage, ActionCoupon, ActionEmail or
// ActionWebhook ("" for a zero Action).
func (a Action) Kind() string {
	switch {
	case a.Stage != "":
		return ActionStage
	case a.Coupon != nil:
		return ActionCoupon
	case a.Email != nil:
		return ActionEmail
	case a.Webhook != nil:
		return ActionWebhook
	case a.Points != nil:
		return ActionPoints
	}
	return ""
}

// CouponAction issues a coupon. In YAML: {percent: 10, expires_in: 14d},
// {amount: 5, expires_in: 30d} or {free_shipping: true, expires_in: 7d}.
type CouponAction struct {
	// Kind is CouponPercent, CouponAmount or CouponFreeShipping.
	Kind string
	// Value is the percentage (0 < v ≤ 100) or the amount (> 0, in the
	// store's currency); 0 for free shipping.
	Value float64
	// ExpiresIn is how long the coupon is valid after issue; 0 means it
	// does not expire.
	ExpiresIn time.Duration
}

// EmailAction sends an email. In YAML: {template: win_back, subject: "..."}.
type EmailAction struct {
	// Template is the template name.
	Template string
	// Subject overrides the template's default subject; "" keeps it.
	Subject string
}

// WebhookAction posts to a URL. In YAML: {url: "${CRM_WEBHOOK_URL}", secret:
// "${CRM_WEBHOOK_SECRET}"}. Both values have ${NAME} already expanded.
type WebhookAction struct {
	// URL is an absolute http or https URL.
	URL string
	// Secret signs the request body (HMAC); "" means unsigned.
	Secret string
}

// Match reports whether the rule's condition holds for in. A rule without
// `when` always matches. Runtime errors (e.g. comparing a missing event
// property with a number) are returned wrapped with the rule name.
func (r *Rule) Match(in Input) (bool, error) {
	return r.match(newEnv(in, r.locs))
}

func (r *Rule) match(e env) (bool, error) {
	if r.program == nil {
		return true, nil
	}
	out, err := expr.Run(r.program, e)
	if err != nil {
		return false, fmt.Errorf("rule %q: %w", r.Name, err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("rule %q: when returned %T, want bool", r.Name, out)
	}
	return b, nil
}

// CronSchedule returns the parsed schedule in the rule's Timezone (UTC when
// unset), or nil for event rules. It satisfies River's PeriodicSchedule.
func (r *Rule) CronSchedule() cron.Schedule {
	return r.schedule
}

// ForEvent returns the event rules whose On is eventType, in file order.
func (rs *RuleSet) ForEvent(eventType string) []*Rule {
	var out []*Rule
	for _, r := range rs.Rules {
		if r.On != "" && r.On == eventType {
			out = append(out, r)
		}
	}
	return out
}

// Scheduled returns the scheduled rules, in file order.
func (rs *RuleSet) Scheduled() []*Rule {
	var out []*Rule
	for _, r := range rs.Rules {
		if r.Schedule != "" {
			out = append(out, r)
		}
	}
	return out
}

// Evaluate returns the rules triggered by in.Event whose condition matches,
// in file order; none when in.Event is nil. A rule whose condition fails at
// runtime does not match; its error is returned (joined with any others)
// alongside the rules that did match.
func (rs *RuleSet) Evaluate(in Input) ([]*Rule, error) {
	if in.Event == nil {
		return nil, nil
	}
	candidates := rs.ForEvent(in.Event.Type)
	if len(candidates) == 0 {
		return nil, nil
	}
	e := newEnv(in, candidates[0].locs)
	var matched []*Rule
	var errs []error
	for _, r := range candidates {
		ok, err := r.match(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			matched = append(matched, r)
		}
	}
	return matched, errors.Join(errs...)
}

// Rule returns the rule with the given name, or nil.
func (rs *RuleSet) Rule(name string) *Rule {
	return rs.byName[name]
}
