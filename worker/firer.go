package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// couponCodeAttempts bounds retries on the (astronomically rare) code collision.
const couponCodeAttempts = 5

// EmailDelivery is the email action stored on a delivery row.
type EmailDelivery struct {
	Template      string `json:"template"`
	Subject       string `json:"subject,omitempty"`
	Transactional bool   `json:"transactional,omitempty"`
}

// WebhookDelivery is the webhook action stored on a delivery row. The
// signing secret is not stored: dispatch takes it from the rule in force.
type WebhookDelivery struct {
	URL         string `json:"url"`
	ActionIndex int    `json:"action_index"`
}

// firer turns matched rules into store.Fire values and writes them: the
// one way a rule fires, for events (one customer's firings at a time) and
// sweeps (a batch of customers) alike.
type firer struct {
	version string
	// actions caches the encoded delivery actions, by rule and action index:
	// they are the same for every customer.
	actions map[firerAction]json.RawMessage
	// events are the events the firings written recorded, to evaluate.
	events []store.EventRef
}

type firerAction struct {
	rule  *rules.Rule
	index int
}

// newFirer returns a firer for rules of the rule-set version.
func newFirer(version string) *firer {
	return &firer{version: version, actions: map[firerAction]json.RawMessage{}}
}

// pointsAmountError says a points action's amount failed at run time for
// one customer: the caller skips the rule for that customer, as it does
// when `when` fails.
type pointsAmountError struct{ err error }

func (e *pointsAmountError) Error() string { return e.err.Error() }
func (e *pointsAmountError) Unwrap() error { return e.err }

// fire is the firing of rule r for customer c and occurrence at now with
// everything its actions do, not written yet; in is what the rule was
// evaluated on (points amounts are evaluated on it). For a customer in the
// rule's holdout group it is a firing marked Holdout that does nothing.
func (fr *firer) fire(r *rules.Rule, c *store.Customer, in *rules.Input, occurrence string, eventID int64, now time.Time) (*store.Fire, error) {
	f := &store.Fire{Firing: store.Firing{
		CustomerID: c.ID, Rule: r.Name, Occurrence: occurrence, RuleSetVersion: fr.version,
		EventID: eventID, FiredAt: now, Cooldown: r.Cooldown,
	}}
	if r.HeldOut(c.ID) {
		// The control group: the firing is recorded, nothing is done.
		f.Firing.Holdout = true
		return f, nil
	}
	for i := range r.Actions {
		if err := fr.addAction(f, r, i, in, now); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// addAction adds what action i of rule r does to f: a stage move, a coupon,
// a points lot (evaluated on in; journey steps pass none and grant no
// points), or a delivery.
func (fr *firer) addAction(f *store.Fire, r *rules.Rule, i int, in *rules.Input, now time.Time) error {
	switch a := r.Actions[i]; {
	case a.Stage != "":
		f.Stages = append(f.Stages, a.Stage)
	case a.Coupon != nil:
		cp := &store.Coupon{Kind: a.Coupon.Kind, Value: a.Coupon.Value}
		if a.Coupon.ExpiresIn > 0 {
			cp.ExpiresAt = now.Add(a.Coupon.ExpiresIn)
		}
		f.Coupons = append(f.Coupons, cp)
	case a.Points != nil:
		if in == nil {
			return nil
		}
		p, err := firePoints(r, a.Points, i, in, now)
		if err != nil {
			return &pointsAmountError{err}
		}
		if p != nil {
			f.Points = append(f.Points, p)
		}
	case a.Email != nil || a.Webhook != nil:
		channel, raw, err := fr.action(r, i)
		if err != nil {
			return err
		}
		f.Deliveries = append(f.Deliveries, &store.Delivery{Channel: channel, Action: raw})
	}
	return nil
}

// fireActions is the firing of some actions (indexes into r.Actions) of a
// journey rule r of rule-set version for a customer: one run segment
// between two waits.
func (fr *firer) fireActions(r *rules.Rule, version, customerID, occurrence string, idx []int, now time.Time) (*store.Fire, error) {
	f := &store.Fire{Firing: store.Firing{CustomerID: customerID, Rule: r.Name, Occurrence: occurrence, RuleSetVersion: version, FiredAt: now}}
	for _, i := range idx {
		if err := fr.addAction(f, r, i, nil, now); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// firePoints is the lot points action a (action i of rule r) grants for in
// at now; nil when its amount is zero or less. The lot is pending for
// PendingFor and expires ExpiresIn after it becomes available; an order id
// in the event's properties (order_id) ties it to the order so a refund
// reverses it.
func firePoints(r *rules.Rule, a *rules.PointsAction, i int, in *rules.Input, now time.Time) (*store.FirePoints, error) {
	n, err := r.PointsFor(a, *in)
	if err != nil || n <= 0 {
		return nil, err
	}
	g := store.PointsGrantReq{Amount: n, Reason: a.Reason, AvailableAt: now.Add(a.PendingFor)}
	if a.ExpiresIn > 0 {
		g.ExpiresAt = g.AvailableAt.Add(a.ExpiresIn)
	}
	if in.Event != nil {
		switch v := in.Event.Properties["order_id"].(type) {
		case string:
			g.OrderID = v
		case float64:
			g.OrderID = strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return &store.FirePoints{Action: i, Grant: g}, nil
}

// action returns the channel and encoded action of the delivery action i of
// rule r, encoding it on first use.
func (fr *firer) action(r *rules.Rule, i int) (string, json.RawMessage, error) {
	channel, action, _ := deliveryAction(r, i)
	k := firerAction{r, i}
	if raw, ok := fr.actions[k]; ok {
		return channel, raw, nil
	}
	raw, err := json.Marshal(action)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s action of %q: %w", channel, r.Name, err)
	}
	fr.actions[k] = raw
	return channel, raw, nil
}

// write writes the firings fs in one statement (store.Store.Fire), counts
// those written and their stage transitions in the job's metrics, and
// returns ds with their queued deliveries appended; the caller enqueues
// their dispatch jobs (insertDispatchJobs) in the same transaction.
func (fr *firer) write(ctx context.Context, st *store.Store, fs []*store.Fire, ds []*store.Delivery) ([]*store.Delivery, error) {
	if err := st.Fire(ctx, fs, store.NewCouponCode, couponCodeAttempts); err != nil {
		return nil, err
	}
	m := metrics.FromContext(ctx)
	for _, f := range fs {
		if !f.Fired {
			continue
		}
		m.RuleFired(f.Firing.Rule)
		for _, t := range f.Transitions {
			m.StageTransition(t.From, t.To)
		}
		ds = append(ds, f.Deliveries...)
		for _, p := range f.Points {
			if p.Event.ID != 0 {
				fr.events = append(fr.events, p.Event)
			}
		}
	}
	return ds, nil
}

// insertEvaluateJobs enqueues the evaluation of the events the firings
// written since the last call recorded (points_granted), in tx.
func (fr *firer) insertEvaluateJobs(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx]) error {
	evs := fr.events
	fr.events = nil
	return ingest.EnqueueEvaluations(ctx, tx, client, evs)
}

// deliveryAction is the channel and the action a delivery row stores for
// action i of rule r; ok is false when that action is not an email or a
// webhook.
func deliveryAction(r *rules.Rule, i int) (channel string, action any, ok bool) {
	switch a := r.Actions[i]; {
	case a.Email != nil:
		return channels.EmailName, EmailDelivery{Template: a.Email.Template, Subject: a.Email.Subject, Transactional: r.Transactional}, true
	case a.Webhook != nil:
		return channels.WebhookName, WebhookDelivery{URL: a.Webhook.URL, ActionIndex: i}, true
	}
	return "", nil, false
}

// insertDispatchJobs enqueues the dispatch jobs of queued deliveries in tx:
// with COPY when fast (many jobs, as a sweep has), else with one INSERT.
func insertDispatchJobs(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], ds []*store.Delivery, fast bool) error {
	if len(ds) == 0 {
		return nil
	}
	var err error
	if fast {
		_, err = client.InsertManyFastTx(ctx, tx, dispatchJobs(ds))
	} else {
		_, err = client.InsertManyTx(ctx, tx, dispatchJobs(ds))
	}
	if err != nil {
		return fmt.Errorf("enqueue dispatch of %d deliveries: %w", len(ds), err)
	}
	return nil
}

// dispatchJobs are the River inserts for queued deliveries: per channel, a
// jobs.DispatchBatchArgs job for each DispatchBatchSize deliveries, or a
// jobs.DispatchArgs job for a delivery on its own.
func dispatchJobs(ds []*store.Delivery) []river.InsertManyParams {
	byChannel := map[string][]jobs.DeliveryRef{}
	var order []string
	for _, d := range ds {
		if _, ok := byChannel[d.Channel]; !ok {
			order = append(order, d.Channel)
		}
		byChannel[d.Channel] = append(byChannel[d.Channel], jobs.DeliveryRef{CustomerID: d.CustomerID, ID: d.ID})
	}
	var inserts []river.InsertManyParams
	for _, ch := range order {
		for refs := range slices.Chunk(byChannel[ch], DispatchBatchSize) {
			if len(refs) == 1 {
				inserts = append(inserts, river.InsertManyParams{Args: jobs.DispatchArgs{CustomerID: refs[0].CustomerID, DeliveryID: refs[0].ID, Channel: ch}})
				continue
			}
			inserts = append(inserts, river.InsertManyParams{Args: jobs.DispatchBatchArgs{Channel: ch, Deliveries: refs}})
		}
	}
	return inserts
}
