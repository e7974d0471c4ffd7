// Package seed generates a realistic store history — sign-ups, orders
// with repeat-purchase decay, NPS and CSAT answers, coupon redemptions,
// customers going quiet — and plays it through a running ciclo exactly as
// a store would: events go to the HTTP API, the workers evaluate them and
// the scheduled sweeps run, while an injected clock walks day by day
// through the past. Everything the report and the dashboard show is then
// what ciclo itself wrote. `ciclo demo --history N` runs it.
package seed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// Defaults for Config.
const (
	DaysDefault = 365
	// batchMax is the most events posted in one request (the API's limit).
	batchMax = 1000
	// drainTimeout bounds the wait for one simulated step's jobs.
	drainTimeout = 2 * time.Minute
	// dayClock is the simulated time of day at which a day's events are
	// posted and evaluated: noon UTC, outside any usual quiet hours for the
	// history's customers, who live in UTC.
	dayClock = 12 * time.Hour
)

// Clock is a settable clock for the app's Config.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time: the wall clock after Real.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

// Real makes the clock follow the wall clock from now on.
func (c *Clock) Real() { c.Set(time.Time{}) }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Config says what history to generate.
type Config struct {
	// App is the running ciclo the history goes through; its Config.Now
	// must be Clock.Now. Required.
	App *app.App
	// Clock is the app's clock; the generator moves it. Required.
	Clock *Clock
	// Token is the API bearer token. Required.
	Token string
	// Customers is how many customers sign up over the history. Required.
	Customers int
	// Days is the history's length, ending today. Default DaysDefault.
	Days int
	// End is the history's last day. Default: the day before Now.
	End time.Time
	// Seed makes the history reproducible. Default 1.
	Seed uint64
	// Progress, optional, gets a line per simulated month.
	Progress io.Writer
	// Logger, default slog.Default().
	Logger *slog.Logger
	// QueueSchema is River's schema, "" for the search path.
	QueueSchema string
}

// Stats sums up a generated history.
type Stats struct {
	Customers, Events, Days int
	From, To                time.Time
}

// event is one generated event, as the API takes it.
type event struct {
	CustomerID     string         `json:"customer_id"`
	Type           string         `json:"type"`
	IdempotencyKey string         `json:"idempotency_key"`
	OccurredAt     time.Time      `json:"occurred_at"`
	Email          string         `json:"email,omitempty"`
	Name           string         `json:"name,omitempty"`
	Timezone       string         `json:"timezone,omitempty"`
	Properties     map[string]any `json:"properties,omitempty"`
	redeem         bool           // look up an open coupon and redeem it first
}

var firstNames = []string{"Ana", "Bo", "Chen", "Dara", "Eli", "Fatou", "Goran", "Hana", "Ivo", "Jun", "Kai", "Lea", "Mo", "Nia", "Omar", "Pia"}

// plan generates every customer's events over days [0, days): sign-up
// dates grow towards the present; 65% of customers order; each further
// order is less likely than the last (repeat-purchase decay: 55%, then
// ×0.8 each time) and comes about 30 days after; a quarter of those who
// stop come back four to five months later; orders are sometimes
// followed by NPS (30%) and CSAT (25%) answers, happier with more orders.
func plan(cfg *Config, start time.Time, days int) map[int][]*event {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x636963_6c6f))
	byDay := map[int][]*event{}
	add := func(day int, e *event) {
		if day < days {
			byDay[day] = append(byDay[day], e)
		}
	}
	at := func(day int) time.Time {
		// Between 08:00 and 11:59 UTC, before the day's noon evaluation.
		return start.AddDate(0, 0, day).Add(8*time.Hour + time.Duration(rng.IntN(4*3600))*time.Second)
	}
	for i := range cfg.Customers {
		id := fmt.Sprintf("cust-%05d", i+1)
		name := firstNames[i%len(firstNames)]
		signup := int(float64(days) * math.Sqrt(rng.Float64()))
		add(signup, &event{CustomerID: id, Type: "signed_up", IdempotencyKey: id + "-signup", OccurredAt: at(signup),
			Email: fmt.Sprintf("%s@example.com", id), Name: name + " " + id[5:], Timezone: "UTC",
			Properties: map[string]any{"source": []string{"ads", "search", "friend", "newsletter"}[rng.IntN(4)]}})
		if rng.Float64() >= 0.65 {
			continue
		}
		day := signup + 1 + int(rng.ExpFloat64()*10) // after the sign-up
		last := day
		p := 0.55
		for n := 1; day < days; n++ {
			total := math.Round((20+rng.ExpFloat64()*45)*100) / 100
			add(day, &event{CustomerID: id, Type: "order_placed", IdempotencyKey: fmt.Sprintf("%s-order-%d", id, n),
				OccurredAt: at(day), Properties: map[string]any{"total": total, "items": 1 + rng.IntN(4)}, redeem: n > 1 && rng.Float64() < 0.7})
			last = day
			if rng.Float64() < 0.3 {
				score := min(10, max(0, int(math.Round(5.5+float64(n)*0.8+rng.NormFloat64()*2.2))))
				add(day+3, &event{CustomerID: id, Type: "nps_answered", IdempotencyKey: fmt.Sprintf("%s-nps-%d", id, n),
					OccurredAt: at(day + 3), Properties: map[string]any{"score": score}})
			}
			if rng.Float64() < 0.25 {
				score := min(5, max(1, int(math.Round(3.6+float64(n)*0.2+rng.NormFloat64()))))
				add(day+2, &event{CustomerID: id, Type: "csat_answered", IdempotencyKey: fmt.Sprintf("%s-csat-%d", id, n),
					OccurredAt: at(day + 2), Properties: map[string]any{"score": score}})
			}
			if rng.Float64() >= p {
				break
			}
			p *= 0.8
			day += 3 + int(rng.ExpFloat64()*30)
		}
		// A quarter of those who stop come back after four to five months,
		// when a win-back coupon may be waiting.
		if back := last + 121 + rng.IntN(30); rng.Float64() < 0.25 && back < days {
			add(back, &event{CustomerID: id, Type: "order_placed", IdempotencyKey: id + "-comeback", OccurredAt: at(back),
				Properties: map[string]any{"total": math.Round((20+rng.ExpFloat64()*45)*100) / 100}, redeem: true})
		}
	}
	for _, es := range byDay {
		sort.SliceStable(es, func(a, b int) bool { return es[a].OccurredAt.Before(es[b].OccurredAt) })
	}
	return byDay
}

// Run plays the history through the app: for each day, the clock moves to
// the day's noon, the day's events are posted, the sweeps due since the
// previous day are enqueued and the queue is drained. Re-running it with the
// same seed on the same database changes nothing: every event has an
// idempotency key and every sweep firing its occurrence.
func Run(ctx context.Context, cfg *Config) (*Stats, error) {
	if cfg.App == nil || cfg.Clock == nil || cfg.Token == "" || cfg.Customers <= 0 {
		return nil, fmt.Errorf("seed: App, Clock, Token and a positive number of customers are required")
	}
	days := cfg.Days
	if days <= 0 {
		days = DaysDefault
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	end := cfg.End
	if end.IsZero() {
		end = time.Now().UTC().AddDate(0, 0, -1)
	}
	end = time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC)
	start := end.AddDate(0, 0, -(days - 1))
	byDay := plan(cfg, start, days)

	// The app's own periodic sweeps run on the wall clock; the history
	// enqueues each simulated day's sweeps itself.
	rs := cfg.App.Rules.Load()
	if cfg.App.Sweeps != nil {
		if _, _, err := cfg.App.Sweeps.Sync(&rules.RuleSet{}); err != nil {
			return nil, fmt.Errorf("seed: pause periodic sweeps: %w", err)
		}
		defer func() { _, _, _ = cfg.App.Sweeps.Sync(cfg.App.Rules.Load()) }()
	}
	st := store.New(cfg.App.Pool)
	stats := &Stats{Customers: cfg.Customers, Days: days, From: start, To: end.AddDate(0, 0, 1)}
	prev := start.Add(-24 * time.Hour).Add(dayClock)
	for d := range days {
		noon := start.AddDate(0, 0, d).Add(dayClock)
		cfg.Clock.Set(noon)
		events := byDay[d]
		if err := redeemCoupons(ctx, st, events, noon); err != nil {
			return nil, err
		}
		for len(events) > 0 {
			n := min(len(events), batchMax)
			if err := post(ctx, cfg.App.Addr(), cfg.Token, events[:n]); err != nil {
				return nil, err
			}
			stats.Events += n
			events = events[n:]
		}
		// The day's sweeps run on the day's facts, as if they ran at noon.
		if err := enqueueSweeps(ctx, cfg.App.River, rs, prev, noon); err != nil {
			return nil, err
		}
		if err := drain(ctx, st, cfg.QueueSchema); err != nil {
			return nil, err
		}
		prev = noon
		if cfg.Progress != nil && (noon.AddDate(0, 0, 1).Day() == 1 || d == days-1) {
			fmt.Fprintf(cfg.Progress, "history: %s done, %d events so far\n", noon.Format("2006-01"), stats.Events)
		}
	}
	return stats, nil
}

// enqueueSweeps inserts the sweeps of every schedule due in (after, upTo],
// grouped as the app's periodic sweeps group them, and a coupon expiry run.
func enqueueSweeps(ctx context.Context, client *river.Client[pgx.Tx], rs *rules.RuleSet, after, upTo time.Time) error {
	type group struct {
		rule  *rules.Rule
		names []string
	}
	var groups []*group
	for _, r := range rs.Scheduled() {
		if r.CronSchedule() == nil {
			continue
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return g.rule.Schedule == r.Schedule && g.rule.Timezone == r.Timezone })
		if i < 0 {
			groups = append(groups, &group{rule: r})
			i = len(groups) - 1
		}
		groups[i].names = append(groups[i].names, r.Name)
	}
	var inserts []river.InsertManyParams
	for _, g := range groups {
		for t := g.rule.CronSchedule().Next(after); !t.After(upTo); t = g.rule.CronSchedule().Next(t) {
			inserts = append(inserts, river.InsertManyParams{Args: jobs.SweepArgs{Tick: t.UTC(), Rules: g.names}})
		}
	}
	inserts = append(inserts, river.InsertManyParams{Args: jobs.CouponExpiryArgs{}})
	if _, err := client.InsertMany(ctx, inserts); err != nil {
		return fmt.Errorf("seed: enqueue sweeps: %w", err)
	}
	return nil
}

// redeemCoupons puts a coupon_redeemed event before each order marked to
// redeem whose customer holds an open coupon then.
func redeemCoupons(ctx context.Context, st *store.Store, events []*event, now time.Time) error {
	for i := 0; i < len(events); i++ {
		e := events[i]
		if !e.redeem {
			continue
		}
		entries, err := st.Timeline(ctx, e.CustomerID, 200)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		for _, en := range entries {
			if en.Kind != store.TimelineCoupon || en.Detail["redeemed_at"] != nil {
				continue
			}
			exp, _ := en.Detail["expires_at"].(string)
			if t, err := time.Parse(time.RFC3339Nano, exp); err != nil || !t.After(now) {
				continue
			}
			code, _ := en.Detail["code"].(string)
			r := &event{CustomerID: e.CustomerID, Type: "coupon_redeemed", IdempotencyKey: e.IdempotencyKey + "-coupon",
				OccurredAt: e.OccurredAt.Add(-time.Second), Properties: map[string]any{"code": code}}
			events = slices.Insert(events, i, r)
			i++
			break
		}
	}
	return nil
}

// post sends a batch of events to the API.
func post(ctx context.Context, addr, token string, events []*event) error {
	body, err := json.Marshal(events)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("seed: post events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("seed: post events: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// drain waits until no job is available or running: everything the step
// caused (evaluations, dispatches, sweep shards) has run.
func drain(ctx context.Context, st *store.Store, schema string) error {
	deadline := time.Now().Add(drainTimeout)
	for {
		counts, err := st.QueueDepth(ctx, schema)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		busy := int64(0)
		for _, c := range counts {
			if c.State == "available" || c.State == "running" {
				busy += c.Count
			}
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("seed: %d jobs still pending after %s: are the workers running?", busy, drainTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
