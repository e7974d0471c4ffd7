// Package dryrun answers "what would this rule set do?" against the live
// database without changing it: every query runs in a READ ONLY
// transaction that is rolled back, nothing is enqueued and nothing is
// sent. It backs `ciclo rules test`, `ciclo rules diff` and
// `ciclo templates preview`.
package dryrun

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/message"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
)

// PreviewCouponCode stands in for the coupon code a firing would draw.
const PreviewCouponCode = "PREVIEW-CODE"

// PreviewUnsubscribeURL stands in for the signed unsubscribe link.
const PreviewUnsubscribeURL = "https://unsubscribe.invalid/preview"

// Event is a hypothetical event for Test, as the events API takes it: the
// event and the contact details and attributes it carries.
type Event struct {
	Type       string         `json:"type"`
	Properties map[string]any `json:"properties,omitempty"`
	OccurredAt time.Time      `json:"occurred_at,omitzero"`
	Email      string         `json:"email,omitempty"`
	Name       string         `json:"name,omitempty"`
	Timezone   string         `json:"timezone,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
	// CustomerID and IdempotencyKey are accepted so that a payload sent to
	// the API can be reused as is; they are ignored.
	CustomerID     string `json:"customer_id,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// TestOptions says what to dry-run.
type TestOptions struct {
	// CustomerID is the customer to evaluate. Required.
	CustomerID string
	// Event is the event to evaluate event rules on; nil evaluates the
	// scheduled rules as a sweep at At would.
	Event *Event
	// At is the evaluation time (`now` in conditions). Default: time.Now.
	At time.Time
	// OrderEvents are the event types folded in as orders, as the server
	// does. Default: order_placed.
	OrderEvents []string
}

// Report is what Test found.
type Report struct {
	RuleSetVersion string          `json:"rule_set_version"`
	At             time.Time       `json:"at"`
	Event          *Event          `json:"event,omitempty"`
	Customer       rules.Customer  `json:"-"`
	Rules          []*RuleReport   `json:"rules"`
	customerStore  *store.Customer // for rendering
	tset           *templates.Set  // for rendering
}

// RuleReport is one rule's outcome.
type RuleReport struct {
	Rule    string `json:"rule"`
	Trigger string `json:"trigger"` // "on order_placed" or `schedule "0 9 * * *"`
	// Triggered is false when the rule's trigger does not apply (another
	// event type, or an event rule in a sweep); the rest is then empty.
	Triggered bool             `json:"triggered"`
	Matched   bool             `json:"matched"`
	Error     string           `json:"error,omitempty"`
	Condition *rules.Condition `json:"condition,omitempty"`
	// AlreadyFired is set when the firing guard would stop the rule: it
	// fired in this cooldown window already.
	AlreadyFired bool      `json:"already_fired,omitempty"`
	Actions      []*Action `json:"actions,omitempty"`
	// Steps, for a journey, are the steps a run started now would take if
	// no awaited event came (every wait_for times out), with their times.
	Steps []string `json:"steps,omitempty"`
}

// Action is what one action of a matching rule would do.
type Action struct {
	Kind string `json:"kind"`
	// Stage: From → To; Unchanged when the customer is in To already.
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Unchanged bool   `json:"unchanged,omitempty"`
	// Coupon.
	Coupon *templates.Coupon `json:"coupon,omitempty"`
	// Email.
	Template   string `json:"template,omitempty"`
	EmailTo    string `json:"email_to,omitempty"`
	Subject    string `json:"subject,omitempty"`
	Text       string `json:"text,omitempty"`
	Suppressed string `json:"suppressed,omitempty"` // why it would not be sent
	// Webhook.
	URL  string          `json:"url,omitempty"`
	Body json.RawMessage `json:"body,omitempty"`
	// Error is a rendering problem.
	Error string `json:"error,omitempty"`
}

// MarshalJSON writes the report with the customer's facts under the names
// conditions use (customer.orders_count → "orders_count").
func (rep *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	facts := map[string]any{}
	v := reflect.ValueOf(rep.Customer)
	for i := range v.NumField() {
		facts[v.Type().Field(i).Tag.Get("expr")] = v.Field(i).Interface()
	}
	return json.Marshal(struct {
		*plain
		Customer map[string]any `json:"customer"`
	}{(*plain)(rep), facts})
}

// ReadOnly runs fn in a READ ONLY, REPEATABLE READ transaction that is
// always rolled back, so fn cannot change the database even by mistake.
func ReadOnly(ctx context.Context, pool *pgxpool.Pool, fn func(*store.Store) error) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return fmt.Errorf("begin read-only transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return fn(store.New(tx))
}

// Test evaluates rs for one customer (and optionally a hypothetical event)
// and says, per rule, whether it would fire, why (each sub-condition's
// value) and what it would do, with emails and webhook bodies rendered.
// Nothing is written, enqueued or sent. It returns store.ErrCustomerNotFound
// (wrapped) for an unknown customer.
func Test(ctx context.Context, pool *pgxpool.Pool, rs *rules.RuleSet, tset *templates.Set, opts TestOptions) (*Report, error) {
	if opts.At.IsZero() {
		opts.At = time.Now()
	}
	if len(opts.OrderEvents) == 0 {
		opts.OrderEvents = []string{"order_placed"}
	}
	rep := &Report{RuleSetVersion: rs.Version, At: opts.At, Event: opts.Event, tset: tset}
	err := ReadOnly(ctx, pool, func(st *store.Store) error {
		c, err := st.GetCustomer(ctx, opts.CustomerID)
		if err != nil {
			return err
		}
		var ev *rules.Event
		if opts.Event != nil {
			if opts.Event.OccurredAt.IsZero() {
				opts.Event.OccurredAt = opts.At
			}
			fold(c, opts.Event, slices.Contains(opts.OrderEvents, opts.Event.Type))
			ev = &rules.Event{Type: opts.Event.Type, Properties: opts.Event.Properties, OccurredAt: opts.Event.OccurredAt}
		}
		rep.customerStore = c
		rep.Customer = store.RuleCustomer(c)
		return rep.evaluate(ctx, st, rs, ev)
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// fold applies an event to the customer's facts the way ingestion does
// (store.IngestEvent's ApplyEventFacts), in memory.
func fold(c *store.Customer, e *Event, isOrder bool) {
	if e.Email != "" {
		c.Email = e.Email
	}
	if e.Name != "" {
		c.Name = e.Name
	}
	if e.Timezone != "" {
		c.Timezone = e.Timezone
	}
	if e.OccurredAt.After(c.LastSeenAt) {
		c.LastSeenAt = e.OccurredAt
	}
	if isOrder {
		if c.FirstOrderAt.IsZero() || e.OccurredAt.Before(c.FirstOrderAt) {
			c.FirstOrderAt = e.OccurredAt
		}
		if e.OccurredAt.After(c.LastOrderAt) {
			c.LastOrderAt = e.OccurredAt
		}
		c.OrdersCount++
		if total, ok := e.Properties["total"].(float64); ok {
			c.TotalSpent += math.Round(total*100) / 100
		}
	}
	if len(e.Attributes) > 0 {
		attrs := make(map[string]any, len(c.Attributes)+len(e.Attributes))
		for k, v := range c.Attributes {
			attrs[k] = v
		}
		for k, v := range e.Attributes {
			attrs[k] = v
		}
		c.Attributes = attrs
	}
}

// evaluate fills rep.Rules. Like the evaluate worker, every rule sees the
// customer as the event found it; stage actions chain from→to in order.
func (rep *Report) evaluate(ctx context.Context, st *store.Store, rs *rules.RuleSet, ev *rules.Event) error {
	in := rules.Input{Customer: rep.Customer, Event: ev, Now: rep.At}
	stage := rep.Customer.Stage
	for _, r := range rs.Rules {
		rr := &RuleReport{Rule: r.Name, Trigger: trigger(r)}
		rep.Rules = append(rep.Rules, rr)
		rr.Triggered = ev != nil && r.On == ev.Type || ev == nil && r.Schedule != ""
		if !rr.Triggered {
			continue
		}
		cond, err := r.Explain(in)
		if err != nil {
			return err
		}
		rr.Condition = cond
		ok, err := r.Match(in)
		if err != nil {
			rr.Error = err.Error()
			continue
		}
		rr.Matched = ok
		if !ok {
			continue
		}
		if r.Cooldown > 0 {
			fired, err := st.FiringExists(ctx, rep.Customer.ID, r.Name, rules.Occurrence(r, 0, rep.At))
			if err != nil {
				return err
			}
			if rr.AlreadyFired = fired; fired {
				continue
			}
		}
		if r.IsJourney() {
			rr.Steps = journeySteps(r, in)
		}
		if stage, err = rep.actions(ctx, st, rs, r, rr, stage); err != nil {
			return err
		}
	}
	return nil
}

// journeySteps lists the steps a run of journey r started on in would
// take when no awaited event comes, each with the time it runs at.
func journeySteps(r *rules.Rule, in rules.Input) []string {
	var out []string
	at := in.Now
	key, _ := r.RunKey(in)
	in.Run = rules.Run{Key: key}
	instrs := r.Journey.Instrs
	for pc := 0; pc < len(instrs); {
		st := instrs[pc]
		line := at.UTC().Format("2006-01-02 15:04") + "  " + st.Describe(r)
		switch st.Op {
		case rules.OpJump:
			pc = st.Target
			continue
		case rules.OpJumpUnless:
			in.Now = at
			ok, err := r.Holds(pc, in)
			switch {
			case err != nil:
				line += ": error (" + err.Error() + "), else"
			case ok:
				line += ": true"
			default:
				line += ": false"
			}
			if ok {
				pc++
			} else {
				pc = st.Target
			}
			out = append(out, line)
			continue
		case rules.OpWait:
			at = at.Add(st.Wait)
		case rules.OpWaitUntil:
			at = st.NextLocal(at, in.Customer.Timezone, r.Location)
		case rules.OpWaitFor:
			at = at.Add(st.Wait)
			out = append(out, line+" (none comes: timeout)")
			pc = st.Target
			continue
		case rules.OpExit:
			out = append(out, line)
			return out
		}
		out = append(out, line)
		pc++
	}
	return append(out, at.UTC().Format("2006-01-02 15:04")+"  done")
}

func trigger(r *rules.Rule) string {
	if r.On != "" {
		return "on " + r.On
	}
	return fmt.Sprintf("schedule %q", r.Schedule)
}

// actions previews what a matching rule would do and returns the stage the
// customer would then be in.
func (rep *Report) actions(ctx context.Context, st *store.Store, rs *rules.RuleSet, r *rules.Rule, rr *RuleReport, stage string) (string, error) {
	var coupon *templates.Coupon
	for _, a := range r.Actions {
		if a.Coupon != nil {
			coupon = &templates.Coupon{Code: PreviewCouponCode, Kind: a.Coupon.Kind, Value: a.Coupon.Value}
			if a.Coupon.ExpiresIn > 0 {
				coupon.ExpiresAt = rep.At.Add(a.Coupon.ExpiresIn)
			}
			break
		}
	}
	c := rep.customerStore
	data := templates.Data{
		Customer: message.Customer(c),
		Coupon:   coupon, Rule: r.Name, UnsubscribeURL: PreviewUnsubscribeURL, StoreName: message.DefaultStoreName, Now: rep.At,
	}
	data.Customer.Stage = stage
	if rep.Event != nil {
		data.Event = &templates.Event{Type: rep.Event.Type, Properties: rep.Event.Properties, OccurredAt: rep.Event.OccurredAt}
	}
	for _, a := range r.Actions {
		switch {
		case a.Stage != "":
			act := &Action{Kind: rules.ActionStage, From: stage, To: a.Stage, Unchanged: stage == a.Stage}
			stage = a.Stage
			data.Customer.Stage = stage
			rr.Actions = append(rr.Actions, act)
		case a.Coupon != nil:
			cp := *coupon
			cp.Kind, cp.Value, cp.ExpiresAt = a.Coupon.Kind, a.Coupon.Value, time.Time{}
			if a.Coupon.ExpiresIn > 0 {
				cp.ExpiresAt = rep.At.Add(a.Coupon.ExpiresIn)
			}
			rr.Actions = append(rr.Actions, &Action{Kind: rules.ActionCoupon, Coupon: &cp})
		case a.Email != nil:
			act := &Action{Kind: rules.ActionEmail, Template: a.Email.Template, EmailTo: c.Email}
			reason, err := suppressed(ctx, st, c, r.Transactional)
			if err != nil {
				return "", err
			}
			act.Suppressed = reason
			if out, err := rep.tset.Render(a.Email.Template, a.Email.Subject, data); err != nil {
				act.Error = err.Error()
			} else {
				act.Subject, act.Text = out.Subject, out.Text
			}
			rr.Actions = append(rr.Actions, act)
		case a.Webhook != nil:
			body, err := json.Marshal(message.NewWebhookBody(r.Name, rs.Version, 0, 0, data, rep.At))
			if err != nil {
				return "", fmt.Errorf("encode webhook body: %w", err)
			}
			rr.Actions = append(rr.Actions, &Action{Kind: rules.ActionWebhook, URL: a.Webhook.URL, Body: body})
		}
	}
	return stage, nil
}

// suppressed says why dispatch would not mail the customer, as the
// dispatch worker decides it; "" when it would.
func suppressed(ctx context.Context, st *store.Store, c *store.Customer, transactional bool) (string, error) {
	if c.Email == "" {
		return "customer has no email address", nil
	}
	reason, err := st.Suppressed(ctx, c.Email)
	if err != nil {
		return "", err
	}
	switch {
	case reason == store.SuppressBounced:
		return "address bounced", nil
	case transactional:
		return "", nil
	case reason != "":
		return "address suppressed: " + reason, nil
	case !c.UnsubscribedAt.IsZero():
		return "customer unsubscribed", nil
	}
	return "", nil
}
