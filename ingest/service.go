package ingest

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// Limits on event fields besides the contact fields' (check.go).
const (
	maxTypeLen = 100
	// maxClockSkew is how far in the future occurred_at may be.
	maxClockSkew = 24 * time.Hour
	// maxOrderTotal keeps totals well inside total_spent's integer cents.
	maxOrderTotal = 1e12
)

// EventCouponRedeemed is the event type that marks a coupon redeemed; its
// properties.code names the coupon, which must be the customer's.
const EventCouponRedeemed = "coupon_redeemed"

// minOccurredAt is the earliest occurred_at accepted.
var minOccurredAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var eventTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)

// Enqueuer inserts jobs in a transaction: a *river.Client[pgx.Tx].
type Enqueuer interface {
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Config configures a Service.
type Config struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// Rules returns the rule set in force (initial stage, version). Required.
	Rules func() *rules.RuleSet
	// OrderEvents are the event types that count as orders (orders_count,
	// first/last order, total spent from properties.total). Default: order_placed.
	OrderEvents []string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Service runs the one ingest transaction every source uses: the events
// API, the Shopify and WooCommerce webhooks, and import --trigger.
type Service struct {
	cfg         Config
	orderEvents map[string]bool

	notifyMu      sync.Mutex
	notified      time.Time // when River's insert notification was last sent
	notifyPending bool      // one is due at notified + notifyInterval

	group *grouper // single-event calls' group commit (group.go)
}

// notifyInterval is how often ingest sends River's insert notification for
// the evaluate queue, at most: River's own limit for a client with
// ciclo's fetch cooldown (worker.FetchCooldownDefault). Jobs committed
// within the interval after a notification get one at its end, so none
// waits for the workers' poll (worker.FetchPollIntervalDefault).
const notifyInterval = 10 * time.Millisecond

// notifyTimeout bounds the sending of one insert notification.
const notifyTimeout = 5 * time.Second

// Options tune one Ingest call for its source.
type Options struct {
	// Batch says the events came as a list: error fields name their index
	// ("[3].email").
	Batch bool
	// KeyOnly makes a repeated idempotency key a duplicate whatever the
	// payload: stores rebuild webhook payloads when they send them, so a
	// replay of one event may differ in fields ciclo does not read. The
	// events API leaves it false: there a reused key with another payload
	// is refused.
	KeyOnly bool
	// RedeemDiscountCodes marks redeemed the ciclo coupons an order event
	// lists in properties.discount_codes; codes that are not the customer's
	// ciclo coupons (the store's own discounts) are ignored.
	RedeemDiscountCodes bool
}

// Result is the outcome of one event, in the order of the input.
type Result struct {
	// ID is the event's id (the first one's, for a duplicate).
	ID int64
	// Duplicate is true when the idempotency key was seen before: nothing
	// was stored for this event.
	Duplicate bool
	// Type is the event's type, for metrics.
	Type string
}

// UnknownCouponError refuses a coupon_redeemed event whose code is not one
// of the customer's coupons; nothing is stored.
type UnknownCouponError struct {
	Field, CustomerID, Code string
}

func (e *UnknownCouponError) Error() string {
	return e.Field + `: customer "` + e.CustomerID + `" has no coupon "` + e.Code + `"`
}

// CouponRedeemedError refuses a coupon_redeemed event for a coupon that was
// redeemed before; nothing is stored.
type CouponRedeemedError struct {
	Field string
	Err   *store.CouponRedeemedError
}

func (e *CouponRedeemedError) Error() string {
	return e.Field + `: coupon "` + e.Err.Code + `" of customer "` + e.Err.CustomerID + `" was already redeemed at ` +
		e.Err.RedeemedAt.UTC().Format(time.RFC3339) + "; nothing was stored"
}

// NewService returns a Service. It panics when a required field is missing
// (a programmer error).
func NewService(cfg *Config) *Service {
	c := *cfg
	if c.Pool == nil || c.Rules == nil {
		panic("ingest: Pool and Rules are required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.OrderEvents) == 0 {
		c.OrderEvents = []string{"order_placed"}
	}
	s := &Service{cfg: c, orderEvents: map[string]bool{}}
	s.group = &grouper{s: s}
	for _, t := range c.OrderEvents {
		s.orderEvents[t] = true
	}
	return s
}

// NewChecker returns a Service that only checks events (Check), for tools
// and fuzz tests that have no database; its Ingest must not be called.
func NewChecker(orderEvents []string) *Service {
	s := &Service{cfg: Config{Now: time.Now, OrderEvents: orderEvents}, orderEvents: map[string]bool{}}
	if len(orderEvents) == 0 {
		s.orderEvents["order_placed"] = true
	}
	for _, t := range orderEvents {
		s.orderEvents[t] = true
	}
	return s
}

// Check validates one event as Ingest does and returns what it would
// store: a *FieldError (ErrMalformed or ErrInvalid) when it is refused.
func (s *Service) Check(e *Event, now time.Time) (*store.NewEvent, error) {
	return s.prepare(e, now, Options{})
}

// IsOrder reports whether events of type t count as orders.
func (s *Service) IsOrder(t string) bool { return s.orderEvents[t] }

// Ingest validates every event, then stores them all in one transaction:
// the events (idempotent on their keys), the customers' facts, coupon
// redemptions, and the evaluate jobs of the new events. It answers after
// the commit. A bad event refuses the whole call with a *FieldError (its
// field named, with the index when opts.Batch), an *UnknownCouponError or a
// *CouponRedeemedError, and nothing is stored; any other error is the
// database's (nothing stored either: the caller may retry with the same keys).
func (s *Service) Ingest(ctx context.Context, events []*Event, opts Options) ([]Result, error) {
	now := s.cfg.Now()
	prepared := make([]*store.NewEvent, len(events))
	for i, e := range events {
		ne, err := s.prepare(e, now, opts)
		if err != nil {
			if opts.Batch {
				err = AtIndex(err, i)
			}
			return nil, err
		}
		prepared[i] = ne
	}
	coupons := false // coupon redemptions need statements after the events'
	for _, e := range prepared {
		coupons = coupons || e.Type == EventCouponRedeemed || opts.RedeemDiscountCodes && s.orderEvents[e.Type] && e.Properties["discount_codes"] != nil
	}
	if len(prepared) == 1 && !coupons && s.group != nil {
		res, err := s.group.submit(ctx, prepared[0], opts)
		if err != nil {
			return nil, err
		}
		return []Result{res}, nil
	}
	return s.store(ctx, prepared, opts, coupons)
}

// store runs the ingest transaction of prepared events (one call's).
func (s *Service) store(ctx context.Context, prepared []*store.NewEvent, opts Options, coupons bool) ([]Result, error) {
	rs := s.cfg.Rules()
	initial := ""
	if len(rs.Stages) > 0 {
		initial = rs.Stages[0]
	}
	// Customers are locked in id order (each customer's events keep their
	// order) so that concurrent batches and sweeps cannot deadlock.
	order := lockOrder(prepared)
	sorted := make([]*store.NewEvent, len(order))
	for k, i := range order {
		sorted[k] = prepared[i]
	}
	job := evaluationJob()
	results := make([]Result, len(prepared))
	// run stores the events with their evaluate jobs, all statements in one
	// pipelined batch in lock order, then redeems coupons.
	run := func(st *store.Store) error {
		ingested, err := st.IngestEventsQueued(ctx, sorted, initial, rs.Version, job)
		var conflict *store.IdempotencyConflictError
		if errors.As(err, &conflict) {
			return idempotencyConflict(conflict, order, opts.Batch)
		}
		if err != nil {
			return err
		}
		for k, i := range order {
			e, res := prepared[i], ingested[k]
			results[i] = Result{ID: res.EventID, Duplicate: res.Duplicate, Type: e.Type}
			if res.Duplicate {
				continue
			}
			if e.Type == EventCouponRedeemed {
				if err := redeemCoupon(ctx, st, e, i, opts.Batch); err != nil {
					return err
				}
			}
			if opts.RedeemDiscountCodes && s.orderEvents[e.Type] {
				if err := redeemDiscountCodes(ctx, st, e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var err error
	if coupons {
		err = pgx.BeginFunc(ctx, s.cfg.Pool, func(tx pgx.Tx) error { return run(store.New(tx)) })
	} else {
		// The batch on the pool is one implicit transaction that commits as
		// it ends: the whole ingest is one round trip.
		err = run(store.New(s.cfg.Pool))
	}
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(results, func(r Result) bool { return !r.Duplicate }) {
		s.notify(ctx, job.Queue)
	}
	return results, nil
}

// lockOrder returns the indexes of events sorted by customer id, each
// customer's events in their order.
func lockOrder(events []*store.NewEvent) []int {
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(events[a].CustomerID, events[b].CustomerID) })
	return order
}

// evaluationJob is the evaluate job each new event gets, as River would
// insert jobs.EvaluateArgs.
func evaluationJob() *store.EvaluationJob {
	args := jobs.EvaluateArgs{}
	return &store.EvaluationJob{Kind: args.Kind(), Queue: args.InsertOpts().Queue,
		MaxAttempts: river.MaxAttemptsDefault, Priority: river.PriorityDefault}
}

// notify sends River's insert notification for queue once the new jobs
// are committed (see store.Store.NotifyInsert for why not in their
// transaction): at once if none was sent in the last notifyInterval, else
// once at its end for all the jobs committed meanwhile. A notification
// that fails is not reported: the events are stored, and the workers' poll
// finds their jobs.
func (s *Service) notify(ctx context.Context, queue string) {
	send := func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
		defer cancel()
		_ = store.New(s.cfg.Pool).NotifyInsert(ctx, queue)
	}
	now := time.Now()
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	switch since := now.Sub(s.notified); {
	case s.notifyPending:
	case since >= notifyInterval:
		s.notified = now
		// Sent with the lock released: the next caller within the interval
		// schedules its own trailing notification meanwhile.
		s.notifyMu.Unlock()
		send(context.WithoutCancel(ctx))
		s.notifyMu.Lock()
	default:
		s.notifyPending = true
		time.AfterFunc(notifyInterval-since, func() {
			s.notifyMu.Lock()
			s.notified, s.notifyPending = time.Now(), false
			s.notifyMu.Unlock()
			send(context.Background())
		})
	}
}

// prepare checks one event and converts it for the store: ErrMalformed for
// text that cannot be taken as sent, ErrInvalid for the rest.
func (s *Service) prepare(e *Event, now time.Time, opts Options) (*store.NewEvent, error) {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Message: fmt.Sprintf(format, args...), Kind: ErrInvalid}
	}
	if strings.TrimSpace(e.CustomerID) == "" {
		return nil, bad("customer_id", "required: the store's id for the customer")
	}
	if err := CheckCustomerID("customer_id", e.CustomerID); err != nil {
		return nil, err
	}
	switch {
	case e.Type == "":
		return nil, bad("type", `required: the event type, e.g. "order_placed"`)
	case len(e.Type) > maxTypeLen || !eventTypeRE.MatchString(e.Type):
		return nil, bad("type", "%q is not a valid event type: use lowercase letters, digits, '_', '.' or '-', starting with a letter", e.Type)
	}
	if err := CheckIdempotencyKey("idempotency_key", e.IdempotencyKey); err != nil {
		return nil, err
	}
	if e.Email != "" {
		if err := CheckEmail("email", e.Email); err != nil {
			return nil, err
		}
	}
	if err := CheckName("name", e.Name); err != nil {
		return nil, err
	}
	if e.Timezone != "" {
		if err := CheckTimezone("timezone", e.Timezone); err != nil {
			return nil, err
		}
	}
	if e.Type == EventCouponRedeemed {
		code, ok := e.Properties["code"].(string)
		if !ok || strings.TrimSpace(code) == "" {
			return nil, bad("properties.code", "required for coupon_redeemed: the code of the customer's coupon")
		}
	}
	ne := &store.NewEvent{
		CustomerID: e.CustomerID, Type: e.Type, IdempotencyKey: e.IdempotencyKey,
		OccurredAt: now, ReceivedAt: now, Properties: e.Properties,
		Email: e.Email, Name: e.Name, Timezone: e.Timezone, Attributes: e.Attributes,
		OrderTypes: s.cfg.OrderEvents,
	}
	if e.IdempotencyKey != "" && !opts.KeyOnly {
		ne.PayloadHash = e.payloadHash()
	}
	if e.OccurredAt != nil {
		if err := CheckOccurredAt("occurred_at", *e.OccurredAt, now); err != nil {
			return nil, err
		}
		ne.OccurredAt = *e.OccurredAt
	}
	if s.orderEvents[e.Type] {
		ne.IsOrder = true
		if v, ok := e.Properties["total"]; ok {
			total, ok := toFloat(v)
			if !ok || total < 0 || total > maxOrderTotal {
				return nil, bad("properties.total", "must be a number from 0 to %.0f (the order total in currency units), got %v", maxOrderTotal, v)
			}
			ne.OrderTotal = total
		}
	}
	return ne, nil
}

// toFloat reads a JSON number (float64 from the API) or a Go number (from
// an integration's mapping).
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}

// payloadHash identifies the event as sent (PayloadHash): its fields in a
// fixed order, occurred_at in UTC (absent stays absent: the server's clock
// is not part of the payload), and an empty properties or attributes object
// the same as none. A retry with the same idempotency key must have the
// same hash.
func (e *Event) payloadHash() []byte {
	occurred := ""
	if e.OccurredAt != nil {
		occurred = e.OccurredAt.UTC().Format(time.RFC3339Nano)
	}
	var props, attrs any
	if len(e.Properties) > 0 {
		props = e.Properties
	}
	if len(e.Attributes) > 0 {
		attrs = e.Attributes
	}
	return PayloadHash(e.CustomerID, e.Type, e.IdempotencyKey, occurred, e.Email, e.Name, e.Timezone, props, attrs)
}

// idempotencyConflict is the answer to a reused idempotency key; order maps
// the positions of the store call to the request's.
func idempotencyConflict(c *store.IdempotencyConflictError, order []int, batch bool) error {
	i := order[c.Index]
	field := "idempotency_key"
	if batch {
		field = "[" + strconv.Itoa(i) + "]." + field
	}
	msg := fmt.Sprintf("idempotency key %q of customer %q was first used for a different event (id %d); "+
		"nothing was stored: resend that event unchanged, or use a new key for a new event", c.Key, c.CustomerID, c.EventID)
	if c.FirstIndex >= 0 {
		msg = fmt.Sprintf("idempotency key %q of customer %q is used by two different events of this batch ([%d] and [%d]); "+
			"nothing was stored: give each event its own key", c.Key, c.CustomerID, order[c.FirstIndex], i)
	}
	return &FieldError{Field: field, Kind: ErrInvalid, Message: msg}
}

// redeemCoupon applies a stored coupon_redeemed event (index i of the
// request) in the ingest transaction. Codes match whatever their case.
func redeemCoupon(ctx context.Context, st *store.Store, e *store.NewEvent, i int, batch bool) error {
	code, _ := e.Properties["code"].(string)
	err := st.RedeemCoupon(ctx, e.CustomerID, code, e.OccurredAt)
	field := "properties.code"
	if batch {
		field = "[" + strconv.Itoa(i) + "]." + field
	}
	var redeemed *store.CouponRedeemedError
	switch {
	case errors.Is(err, store.ErrCouponNotFound):
		return &UnknownCouponError{Field: field, CustomerID: e.CustomerID, Code: code}
	case errors.As(err, &redeemed):
		return &CouponRedeemedError{Field: field, Err: redeemed}
	}
	return err
}

// redeemDiscountCodes marks redeemed the customer's ciclo coupons among an
// order's discount codes; the store's own discount codes, and coupons
// redeemed before, are left alone.
func redeemDiscountCodes(ctx context.Context, st *store.Store, e *store.NewEvent) error {
	codes, _ := e.Properties["discount_codes"].([]any)
	for _, c := range codes {
		code, ok := c.(string)
		if !ok || strings.TrimSpace(code) == "" {
			continue
		}
		err := st.RedeemCoupon(ctx, e.CustomerID, code, e.OccurredAt)
		if errors.Is(err, store.ErrCouponNotFound) || errors.As(err, new(*store.CouponRedeemedError)) {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}
