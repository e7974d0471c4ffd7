package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

const (
	diffSeed        = 20260310
	diffExpressions = 600
	diffCustomers   = 400
	diffGroups      = 150 // sweeps over several rules at once (prefilters OR-ed)
	diffPageSize    = 64  // small, so that every sweep pages
)

// allCustomerFields are every customer field rules can read.
var allCustomerFields = []string{"id", "email", "name", "timezone", "stage", "stage_entered_at", "created_at", "last_seen_at",
	"first_order_at", "last_order_at", "orders_count", "total_spent", "attributes", "unsubscribed", "coupon_expires_at",
	"points_balance", "points_pending", "points_expiring_at", "tier"}

// diffTimeFields include points_expiring_at, which sweeps compute from the
// ledger and must never push down.
var diffTimeFields = []string{"stage_entered_at", "created_at", "last_seen_at", "first_order_at", "last_order_at", "coupon_expires_at", "points_expiring_at"}

// diffNumbers are the literals time helpers are compared with; customers'
// times are put on and around the same boundaries.
var diffNumbers = []string{"0", "1", "2.5", "7", "30", "60", "0.5", "-1", "-3", "-0.25", "365", "36500", "40000", "200000", "1e6", "1e300"}

// TestSweepPrefilterDifferential checks that pushing rules' conditions down
// into a sweep's SQL never changes which customers fire: for random `when`
// expressions (over every shape rules.Prefilter translates, and others) and
// random customers (NULLs, infinities, Go's zero time, times exactly on and
// around the expressions' boundaries), the customers a prefiltered sweep
// matches are exactly those the compiled expression accepts when run on
// every row.
func TestSweepPrefilterDifferential(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(diffSeed))
	// A tick with nanoseconds: Postgres keeps microseconds.
	now := time.Date(2026, 3, 10, 12, 0, 0, 123456789, time.UTC)

	insertDiffCustomers(t, db, rng, now)
	st := store.New(db.Pool)

	// Ground truth: every row, every field, the compiled expression decides.
	everyone, err := st.SweepPage(ctx, store.NewSweepQuery(allCustomerFields, nil), now, "", "", diffCustomers+1, nil)
	require.NoError(t, err)
	require.Len(t, everyone, diffCustomers)

	g := &whenGen{rng: rng}
	var (
		rs                         []*rules.Rule
		pushed, readFiltered, errs int
	)
	for len(rs) < diffExpressions {
		when := g.expr(3)
		r := parseWhen(t, when)
		rs = append(rs, r)
		if r.Prefilter() != nil {
			pushed++
		}
	}
	check := func(name string, due []*rules.Rule) {
		t.Helper()
		want, n := matching(t, due, now, everyone)
		errs += n
		var (
			fields  []string
			filters []*rules.Prefilter
			anyone  bool
		)
		for _, r := range due {
			fields = append(fields, r.Fields...)
			if f := r.Prefilter(); f != nil {
				filters = append(filters, f)
			} else {
				anyone = true
			}
		}
		slices.Sort(fields)
		fields = slices.Compact(fields)
		var filter *rules.Prefilter
		switch {
		case anyone:
		case len(filters) == 1:
			filter = filters[0]
		default:
			filter = &rules.Prefilter{Op: rules.PrefilterOr, Args: filters}
		}
		sq := store.NewSweepQuery(fields, filter)
		var read []store.Customer
		for after := ""; ; {
			page, err := st.SweepPage(ctx, sq, now, after, "", diffPageSize, nil)
			require.NoError(t, err, "%s: sweep pushed down as %s", name, sq.PushedSQL)
			read = append(read, page...)
			if len(page) < diffPageSize {
				break
			}
			after = page[len(page)-1].ID
		}
		readFiltered += len(read)
		got, _ := matching(t, due, now, read)
		if !slices.Equal(want, got) {
			var whens []string
			for _, r := range due {
				whens = append(whens, r.When)
			}
			require.Failf(t, "a prefilter changed who fires",
				"%s: when %q\npushed down as %s\nmissing: %v\nextra: %v", name, whens, sq.PushedSQL, minus(want, got), minus(got, want))
		}
	}
	for i, r := range rs {
		check("expression "+strconv.Itoa(i), []*rules.Rule{r})
	}
	for i := range diffGroups {
		due := make([]*rules.Rule, 2+rng.Intn(3))
		for j := range due {
			due[j] = rs[rng.Intn(len(rs))]
		}
		check("group "+strconv.Itoa(i), due)
	}
	total := (diffExpressions + diffGroups) * diffCustomers
	t.Logf("%d expressions (%d pushed down) and %d groups over %d customers: %d of %d rows read (%.0f%%), %d run-time errors",
		diffExpressions, pushed, diffGroups, diffCustomers, readFiltered, total, 100*float64(readFiltered)/float64(total), errs)
	// The test is only as good as its reach: most generated conditions are pushed down.
	require.Greater(t, pushed, diffExpressions*2/5)
}

// matching returns, in id order, the customers for which any of rs matches,
// and how many evaluations failed at run time (they do not match).
func matching(t *testing.T, rs []*rules.Rule, now time.Time, cs []store.Customer) ([]string, int) {
	t.Helper()
	m := rules.NewMatcher(rs, now)
	matched := make([]bool, len(rs))
	var (
		ids  []string
		errs int
	)
	for i := range cs {
		rc := store.RuleCustomer(&cs[i])
		if err := m.Match(&rc, matched); err != nil {
			errs++
		}
		if slices.Contains(matched, true) {
			ids = append(ids, cs[i].ID)
		}
	}
	return ids, errs
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// insertDiffCustomers stores diffCustomers customers with facts drawn from
// edge values.
func insertDiffCustomers(t *testing.T, db *testdb.DB, rng *rand.Rand, now time.Time) {
	t.Helper()
	pick := func(vs ...string) string { return vs[rng.Intn(len(vs))] }
	day := 24 * time.Hour
	ts := func(nullable bool) pgtype.Timestamptz {
		switch k := rng.Intn(20); {
		case k == 0 && nullable, k == 1 && nullable, k == 2 && nullable:
			return pgtype.Timestamptz{}
		case k == 3:
			return pgtype.Timestamptz{Valid: true, InfinityModifier: pgtype.Infinity}
		case k == 4:
			return pgtype.Timestamptz{Valid: true, InfinityModifier: pgtype.NegativeInfinity}
		case k == 5:
			return pgtype.Timestamptz{Valid: true, Time: time.Time{}} // Go's zero instant
		case k == 6:
			far := []time.Time{time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1800, 6, 1, 0, 0, 0, 0, time.UTC),
				time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-200, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), now.AddDate(-150, 0, 0), now.AddDate(150, 0, 0)}
			return pgtype.Timestamptz{Valid: true, Time: far[rng.Intn(len(far))]}
		case k < 10:
			return pgtype.Timestamptz{Valid: true, Time: now.Add(time.Duration(rng.Int63n(int64(800*day))) - 400*day)}
		default:
			// On or next to a boundary: now ± n days or hours, ± a little.
			n, err := strconv.ParseFloat(diffNumbers[rng.Intn(len(diffNumbers))], 64)
			require.NoError(t, err)
			if math.Abs(n) > 40000 {
				n = 0
			}
			unit := day
			if rng.Intn(3) == 0 {
				unit = time.Hour
			}
			at := now.Add(-time.Duration(n * float64(unit)))
			if rng.Intn(2) == 0 {
				at = now.Add(time.Duration(n * float64(unit)))
			}
			nudge := []time.Duration{0, 0, time.Microsecond, -time.Microsecond, time.Millisecond, -time.Millisecond,
				time.Second, -time.Second, 2 * time.Second, -2 * time.Second, 500 * time.Nanosecond, -500 * time.Nanosecond}
			return pgtype.Timestamptz{Valid: true, Time: at.Add(nudge[rng.Intn(len(nudge))])}
		}
	}
	batch := &pgx.Batch{}
	for i := range diffCustomers {
		orders := []int{0, 0, 1, 1, 2, 3, 5, -1, math.MaxInt32, math.MinInt32, rng.Intn(50)}[rng.Intn(11)]
		attrs := pick(`{}`, `{"vip": true}`, `{"vip": false}`, `{"tier": "gold"}`, `{"score": 7}`, `{"score": "high"}`, `{"score": null}`)
		batch.Queue(`INSERT INTO customers (id, email, name, timezone, stage, stage_entered_at, created_at, last_seen_at,
			first_order_at, last_order_at, orders_count, total_spent_cents, attributes, unsubscribed_at, coupon_expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
			fmt.Sprintf("c%04d", i), pick("", "ana@example.com", "bo@example.org", "Cy@Example.com"),
			pick("", "Ana", "ana", "Bo Li", "Ana "), pick("", "UTC", "Europe/Madrid", "America/Los_Angeles", "Not/AZone"),
			pick("", "reach", "acquisition", "conversion", "retention", "loyalty", "at_risk", "churned", "Churned", "churned "),
			ts(true), ts(false), ts(true), ts(true), ts(true),
			orders, []int64{0, 1, 9999, 10000, 10001, -500, rng.Int63n(100000)}[rng.Intn(7)], attrs,
			[]pgtype.Timestamptz{{}, {}, {}, {Valid: true, Time: now.Add(-day)}, {Valid: true, Time: time.Time{}},
				{Valid: true, InfinityModifier: pgtype.Infinity}, {Valid: true, InfinityModifier: pgtype.NegativeInfinity}}[rng.Intn(7)],
			ts(true))
		// Some customers get a points lot expiring on or near a boundary.
		if exp := ts(false); rng.Intn(2) == 0 && exp.InfinityModifier == pgtype.Finite && exp.Time.Year() > 1 {
			batch.Queue(`INSERT INTO points_lots (customer_id, amount, remaining, reason, granted_at, available_at, expires_at, idempotency_key)
				VALUES ($1, 10, 10, 'diff', '-infinity', '-infinity', $2, 'k')`, fmt.Sprintf("c%04d", i), exp)
		}
	}
	require.NoError(t, db.Pool.SendBatch(context.Background(), batch).Close())
}

// whenGen draws random, valid `when` expressions.
type whenGen struct{ rng *rand.Rand }

func (g *whenGen) pick(vs ...string) string { return vs[g.rng.Intn(len(vs))] }

// cmp writes "a op b", with the sides swapped half of the time (op flipped).
func (g *whenGen) cmp(subject, op, lit string) string {
	if g.rng.Intn(2) == 0 {
		return subject + " " + op + " " + lit
	}
	flip := map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
	return lit + " " + flip[op] + " " + subject
}

func (g *whenGen) op() string { return g.pick("==", "!=", "<", "<=", ">", ">=", "<", "<=", ">", ">=") }

func (g *whenGen) stage() string {
	return strconv.Quote(g.pick("", "reach", "conversion", "retention", "at_risk", "churned", "Churned", "churned "))
}

func (g *whenGen) stageList() string {
	n := g.rng.Intn(4)
	vals := make([]string, n)
	for i := range vals {
		vals[i] = g.stage()
	}
	return "[" + strings.Join(vals, ", ") + "]"
}

func (g *whenGen) timeField() string { return "customer." + g.pick(diffTimeFields...) }

// atom draws a condition; most are shapes rules.Prefilter translates.
func (g *whenGen) atom() string {
	n := g.rng.Intn(14)
	if g.rng.Intn(4) == 0 {
		n = 14 + g.rng.Intn(8)
	}
	switch n {
	case 0, 1:
		return g.cmp("customer.stage", g.pick("==", "!="), g.stage())
	case 2:
		return "customer.stage " + g.pick("in", "not in") + " " + g.stageList()
	case 3, 4:
		lit := g.pick("0", "1", "2", "3", "5", "-1", "2147483647", "2147483648", "-2147483649")
		return g.cmp("customer.orders_count", g.op(), lit)
	case 5:
		return g.pick("customer.orders_count in 1..3", "customer.orders_count == 1.0", "customer.orders_count > 1.5",
			"customer.orders_count % 2 == 0", "customer.orders_count not in [1, 2]", "customer.orders_count == nil")
	case 6:
		return g.pick("customer.unsubscribed", "!customer.unsubscribed", "not customer.unsubscribed",
			"customer.unsubscribed == false", "customer.unsubscribed != true", "!!customer.unsubscribed")
	case 7, 8:
		return g.pick("has", "!has", "not has") + "(" + g.timeField() + ")"
	case 9, 10, 11, 12, 13:
		call := g.pick("days_since", "hours_since", "days_until") + "(" + g.timeField() + ")"
		lit := g.pick(diffNumbers...)
		if g.rng.Intn(8) == 0 {
			lit = "-" + lit
		}
		return g.cmp(call, g.op(), lit)
	case 14:
		return g.pick(g.timeField()+" == nil", g.timeField()+" != nil", g.timeField()+" < now", "now >= "+g.timeField(),
			"days_since("+g.timeField()+") >= customer.orders_count", "-days_since("+g.timeField()+") < -30",
			"days_since("+g.timeField()+") >= 60 == true", "days_since(now) == 0")
	case 15:
		return g.pick(`customer.name == "Ana"`, `customer.email endsWith "@example.com"`, `customer.timezone == "Europe/Madrid"`,
			`len(customer.name) > 3`, `customer.name < "B"`, `customer.stage < "m"`, `customer.stage startsWith "ch"`)
	case 16:
		return g.pick("customer.total_spent >= 100", "customer.total_spent == 0", "customer.total_spent < 0")
	case 17:
		return g.pick("customer.attributes.vip == true", `customer.attributes["tier"] == "gold"`,
			"customer.attributes.score > 5", "(customer.attributes?.vip ?? false) == true")
	case 18:
		return g.pick("local_hour() >= 9", "local_hour() < 21", "true", "false")
	case 19:
		return "(customer.orders_count > 2 ? " + g.atom() + " : " + g.atom() + ")"
	case 20:
		return g.pick("any([1, 2], {# == customer.orders_count})", `$env.customer.stage == "churned"`,
			`customer?.stage == "churned"`, `customer["orders_count"] == 1`, `customer.stage in ["churned"] == false`)
	default:
		return "!(" + g.atom() + ")"
	}
}

func (g *whenGen) expr(depth int) string {
	if depth == 0 || g.rng.Intn(3) == 0 {
		return g.atom()
	}
	switch g.rng.Intn(8) {
	case 0, 1, 2, 3:
		return "(" + g.expr(depth-1) + " " + g.pick("&&", "and") + " " + g.expr(depth-1) + ")"
	case 4, 5, 6:
		return "(" + g.expr(depth-1) + " " + g.pick("||", "or") + " " + g.expr(depth-1) + ")"
	default:
		return g.pick("!", "not ") + "(" + g.expr(depth-1) + ")"
	}
}
