package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/smtpsink"
)

// eventEmailRules emails every order_placed event's customer.
const eventEmailRules = `version: 1
rules:
  - {name: order-email, on: order_placed, actions: [{email: {template: welcome, subject: "Thanks for your order"}}]}
`

// eventEmailTarget is DESIGN.md's p99 at eventEmailTargetRate events/s.
const (
	eventEmailTarget     = 250 * time.Millisecond
	eventEmailTargetRate = 200
)

// eventEmail measures, at each offered rate, the time from sending an event
// (one request each, sent on the tick whether or not earlier ones were
// answered) to its email being accepted by the SMTP server. The baseline
// does the least such a path must: per event, one single-row INSERT
// (committed) and one go-mail send over a reused connection, at the same
// rate; the ratio is its p99 over ciclo's.
func (r *runner) eventEmail(ctx context.Context) ([]Row, error) {
	arrived := newArrivals()
	r.progress("event-email: starting ciclo on a fresh schema")
	e, err := r.newEnv(ctx, envOptions{role: app.RoleAll, rules: eventEmailRules, onMessage: arrived.record})
	if err != nil {
		return nil, err
	}
	defer e.close()
	if _, err := e.pool.Exec(ctx, baselineTable); err != nil {
		return nil, fmt.Errorf("create baseline table: %w", err)
	}
	raw, err := newRawMailer()
	if err != nil {
		return nil, err
	}
	defer raw.close()

	// Warm up (connections, caches, the first jobs), untimed.
	if _, _, err := r.cicloLatency(ctx, e, arrived, 20, 20, -1); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	var rows []Row
	for _, rate := range r.sizes.emailRates {
		n := int(float64(rate) * r.sizes.emailFor.Seconds())
		ResetPeakRSS()
		samples, err := r.measure(ctx,
			func(ctx context.Context) (float64, error) {
				lat, err := r.baselineLatency(ctx, e, raw, rate, n)
				return ms(percentile(lat, 0.99)), err
			},
			func(ctx context.Context, run int) (float64, map[string]float64, error) {
				return r.cicloLatency(ctx, e, arrived, rate, n, run)
			})
		if err != nil {
			return nil, fmt.Errorf("%d events/s: %w", rate, err)
		}
		row := r.finish(Row{Name: fmt.Sprintf("event-email/%d", rate), Size: fmt.Sprintf("%d events/s for %s", rate, r.sizes.emailFor),
			Unit: "ms p99", Baseline: "ms p99 of INSERT + raw go-mail send"}, samples, true, 0)
		if rate == eventEmailTargetRate {
			met := row.Value < ms(eventEmailTarget)
			row.Met, row.Target = &met, fmt.Sprintf("p99 < %d ms", eventEmailTarget.Milliseconds())
		}
		d := row.Details
		row.Notes = fmt.Sprintf("p50 %.0f ms, p95 %.0f ms; backlog when the last event was sent: %.0f emails; backlog %s",
			d["p50_ms"], d["p95_ms"], d["backlog"], map[bool]string{true: "GROWS", false: "steady"}[d["growing"] > 0])
		rows = append(rows, row)
	}
	return rows, nil
}

// cicloLatency sends n order events at rate and returns the p99 latency in
// ms and the other figures.
func (r *runner) cicloLatency(ctx context.Context, e *env, arrived *arrivals, rate, n, run int) (float64, map[string]float64, error) {
	prefix := fmt.Sprintf("lat%d-%d-", rate, run)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("%s%d@example.com", prefix, i)
	}
	sent, wait := atRate(rate, n, func(i int) error {
		return e.postEvents(ctx, fmt.Sprintf(`{"customer_id":"%s%d","type":"order_placed","email":"%s","properties":{"total":20}}`,
			prefix, i, addrs[i]))
	})
	backlog := n - arrived.count(addrs)
	if err := wait(); err != nil {
		return 0, nil, err
	}
	at, err := arrived.wait(ctx, addrs, r.sizes.drainTimeout)
	if err != nil {
		return 0, nil, err
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		lat[i] = at[i].Sub(sent[i])
	}
	q := n / 4
	firstQ, lastQ := percentile(lat[:q], 0.5), percentile(lat[n-q:], 0.5)
	growing := 0.0
	if lastQ > 2*firstQ+50*time.Millisecond {
		growing = 1
	}
	return ms(percentile(lat, 0.99)), map[string]float64{
		"p50_ms": ms(percentile(lat, 0.5)), "p95_ms": ms(percentile(lat, 0.95)), "p99_ms": ms(percentile(lat, 0.99)),
		"max_ms": ms(slices.Max(lat)), "backlog": float64(backlog), "growing": growing,
		"first_quarter_p50_ms": ms(firstQ), "last_quarter_p50_ms": ms(lastQ),
	}, nil
}

// baselineLatency runs the baseline at rate: per event, an INSERT and a
// go-mail send over raw's one connection, timed from the tick.
func (r *runner) baselineLatency(ctx context.Context, e *env, raw *rawMailer, rate, n int) ([]time.Duration, error) {
	if err := raw.begin(); err != nil {
		return nil, err
	}
	done := make([]time.Time, n)
	sent, wait := atRate(rate, n, func(i int) error {
		if _, err := e.pool.Exec(ctx, `INSERT INTO bench_insert (customer_id, payload, at) VALUES ($1, '{"total": 20}', now())`,
			fmt.Sprint("c-", i)); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		err := raw.send(fmt.Sprintf("raw-%d@example.com", i))
		done[i] = time.Now()
		return err
	})
	if err := wait(); err != nil {
		return nil, err
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		lat[i] = done[i].Sub(sent[i])
	}
	return lat, nil
}

// atRate calls fn(i) for i < n, each in a goroutine of its own, one every
// 1/rate s whether or not earlier calls have returned, so that the offered
// load is the rate. It returns after the last call has started: when each
// started, and a wait that returns the first error once all have returned.
func atRate(rate, n int, fn func(i int) error) ([]time.Time, func() error) {
	started := make([]time.Time, n)
	errs := make(chan error, n)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := range n {
		<-tick.C
		started[i] = time.Now()
		wg.Go(func() { errs <- fn(i) })
	}
	return started, func() error {
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// arrivals records when the SMTP server accepted a message, by recipient.
type arrivals struct {
	mu      sync.Mutex
	at      map[string]time.Time
	changed chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{at: map[string]time.Time{}, changed: make(chan struct{})}
}

func (a *arrivals) record(to []string) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range to {
		a.at[strings.ToLower(strings.Trim(t, "<>"))] = now
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// count is how many of addrs have had a message.
func (a *arrivals) count(addrs []string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ad := range addrs {
		if _, ok := a.at[ad]; ok {
			n++
		}
	}
	return n
}

// wait waits until every one of addrs has had a message and returns when each did.
func (a *arrivals) wait(ctx context.Context, addrs []string, timeout time.Duration) ([]time.Time, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		a.mu.Lock()
		out, missing := make([]time.Time, len(addrs)), 0
		for i, ad := range addrs {
			t, ok := a.at[ad]
			out[i] = t
			if !ok {
				missing++
			}
		}
		changed := a.changed
		a.mu.Unlock()
		if missing == 0 {
			return out, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, fmt.Errorf("%d of %d emails did not arrive within %s", missing, len(addrs), timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// rawMailer sends with go-mail over one connection to an SMTP server of its
// own, the message ciclo renders for the welcome template, one at a time.
// begin opens the connection a measurement reuses (an idle one would be
// closed by the server between measurements).
type rawMailer struct {
	mu     sync.Mutex
	srv    *smtpsink.Server
	client *gomail.Client
	msg    renderedMail
}

func newRawMailer() (*rawMailer, error) {
	msg, err := renderWelcome("Thanks for your order")
	if err != nil {
		return nil, err
	}
	srv, err := smtpsink.Listen(smtpsink.Options{Discard: true})
	if err != nil {
		return nil, err
	}
	return &rawMailer{srv: srv, msg: msg}, nil
}

// begin replaces the connection with a new one, untimed.
func (m *rawMailer) begin() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client != nil {
		_ = m.client.Close()
	}
	var err error
	m.client, err = dialRaw(m.srv)
	return err
}

func (m *rawMailer) send(to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.msg.send(m.client, to)
}

func (m *rawMailer) close() {
	if m.client != nil {
		_ = m.client.Close()
	}
	_ = m.srv.Close()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the p-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
