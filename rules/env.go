package rules

import (
	"math"
	"sync"
	"time"
)

// maxCachedLocations bounds the per-rule-set cache of customer time zones, so
// that customer-supplied garbage in Customer.Timezone cannot grow it forever.
const maxCachedLocations = 1024

// Input is what a `when` expression sees: the customer as `customer`, the
// triggering event as `event` (zero-valued for scheduled rules) and the
// evaluation time as `now`.
type Input struct {
	// Customer is the customer the rule is evaluated for.
	Customer Customer
	// Event is the event that triggered the evaluation; nil for scheduled
	// sweeps, in which case `event` is a zero Event in expressions.
	Event *Event
	// Now is the evaluation instant that days_since, hours_since, days_until
	// and local_hour are relative to. Callers must set it (from their clock);
	// rules never read the wall clock themselves.
	Now time.Time
	// Run is the journey run evaluated for (run.key); zero outside journeys.
	Run Run
}

// Customer holds the facts about a customer that rules can read. Expression
// names are the snake_case `expr` tags, e.g. customer.last_order_at. Zero
// times mean "never happened"; see days_since.
type Customer struct {
	ID             string         `expr:"id"`
	Email          string         `expr:"email"`
	Name           string         `expr:"name"`
	Timezone       string         `expr:"timezone"`
	Stage          string         `expr:"stage"`
	StageEnteredAt time.Time      `expr:"stage_entered_at"`
	CreatedAt      time.Time      `expr:"created_at"`
	LastSeenAt     time.Time      `expr:"last_seen_at"`
	FirstOrderAt   time.Time      `expr:"first_order_at"`
	LastOrderAt    time.Time      `expr:"last_order_at"`
	OrdersCount    int            `expr:"orders_count"`
	TotalSpent     float64        `expr:"total_spent"`
	Attributes     map[string]any `expr:"attributes"`
	Unsubscribed   bool           `expr:"unsubscribed"`
	// CouponExpiresAt is when the customer's first unredeemed, unexpired
	// coupon expires; zero when there is none. E.g. remind before a bonus
	// expires with days_until(customer.coupon_expires_at) <= 3.
	CouponExpiresAt time.Time `expr:"coupon_expires_at"`
	// PointsBalance is the customer's loyalty points balance (the sum of the
	// ledger; below zero while a reversal's debt is open).
	PointsBalance int `expr:"points_balance"`
	// PointsPending is the points granted but not spendable yet.
	PointsPending int `expr:"points_pending"`
	// PointsExpiringAt is when the customer's earliest-expiring available
	// points expire; zero when none expire.
	PointsExpiringAt time.Time `expr:"points_expiring_at"`
	// Tier is the customer's loyalty tier (the rules file's tiers); "" for none.
	Tier string `expr:"tier"`
}

// Event is a customer event as expressions see it, e.g. event.type or
// event.properties.score. Property values are `any`: comparing a missing
// property (nil) with a number is a runtime error reported by Match.
type Event struct {
	Type       string         `expr:"type"`
	Properties map[string]any `expr:"properties"`
	OccurredAt time.Time      `expr:"occurred_at"`
}

// env is the expression environment. It is a struct rather than a map so that
// unknown names and misused helpers fail when the rules file is loaded.
// Helpers are func-typed fields (not methods) so they get snake_case names
// through `expr` tags and can close over Now and the customer's time zone.
type env struct {
	Customer Customer  `expr:"customer"`
	Event    Event     `expr:"event"`
	Now      time.Time `expr:"now"`
	Run      Run       `expr:"run"`

	// DaysSince returns the days elapsed from t to now (fractional, negative
	// for a future t). For a zero t ("never happened") it returns NaN, so
	// every comparison with it (>=, <, ==, …) is false: a customer who never
	// ordered matches neither days_since(customer.last_order_at) >= 60 nor
	// < 60. Test for that case explicitly with has(t) or !has(t).
	DaysSince func(t time.Time) float64 `expr:"days_since"`
	// HoursSince is DaysSince in hours; NaN for a zero t.
	HoursSince func(t time.Time) float64 `expr:"hours_since"`
	// DaysUntil returns the days from now until t (negative once t has
	// passed); NaN for a zero t.
	DaysUntil func(t time.Time) float64 `expr:"days_until"`
	// LocalHour returns the hour (0–23) of now in the customer's time zone,
	// or in UTC when customer.timezone is empty or not a valid IANA name.
	LocalHour func() int `expr:"local_hour"`
	// Has reports whether t is set (non-zero), i.e. the thing happened.
	Has func(t time.Time) bool `expr:"has"`
}

// envNames lists the top-level names of env, for did-you-mean hints.
var envNames = []string{"customer", "event", "now", "run", "days_since", "hours_since", "days_until", "local_hour", "has"}

// customerFields and eventFields list the expression names of Customer and
// Event, for did-you-mean hints.
var (
	customerFields = []string{"id", "email", "name", "timezone", "stage", "stage_entered_at", "created_at", "last_seen_at", "first_order_at", "last_order_at", "orders_count", "total_spent", "attributes", "unsubscribed", "coupon_expires_at", "points_balance", "points_pending", "points_expiring_at", "tier"}
	eventFields    = []string{"type", "properties", "occurred_at"}
)

// newEnv builds the environment for one evaluation.
func newEnv(in Input, locs *locationCache) env {
	e := env{Customer: in.Customer, Now: in.Now, Run: in.Run}
	if in.Event != nil {
		e.Event = *in.Event
	}
	now := in.Now
	tz := in.Customer.Timezone
	e.setHelpers(now, func() string { return tz }, locs)
	return e
}

// setHelpers sets the helper functions, relative to now; tz returns the
// customer time zone name that local_hour reads.
func (e *env) setHelpers(now time.Time, tz func() string, locs *locationCache) {
	e.DaysSince = func(t time.Time) float64 {
		if t.IsZero() {
			return math.NaN()
		}
		return now.Sub(t).Hours() / 24
	}
	e.HoursSince = func(t time.Time) float64 {
		if t.IsZero() {
			return math.NaN()
		}
		return now.Sub(t).Hours()
	}
	e.DaysUntil = func(t time.Time) float64 {
		if t.IsZero() {
			return math.NaN()
		}
		return t.Sub(now).Hours() / 24
	}
	e.LocalHour = func() int {
		return now.In(locs.load(tz())).Hour()
	}
	e.Has = func(t time.Time) bool { return !t.IsZero() }
}

// locationCache memoizes time.LoadLocation per rule set; invalid and empty
// names resolve to UTC.
type locationCache struct {
	mu   sync.RWMutex
	locs map[string]*time.Location
}

func (c *locationCache) load(name string) *time.Location {
	if name == "" || name == "UTC" {
		return time.UTC
	}
	c.mu.RLock()
	loc, ok := c.locs[name]
	c.mu.RUnlock()
	if ok {
		return loc
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = time.UTC
	}
	c.mu.Lock()
	if c.locs == nil {
		c.locs = make(map[string]*time.Location)
	}
	if len(c.locs) < maxCachedLocations {
		c.locs[name] = loc
	}
	c.mu.Unlock()
	return loc
}
