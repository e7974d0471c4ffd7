package rules

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ciclohq/ciclo/money"
)

// Tier windows: what a tier's threshold is measured over.
const (
	TierLifetime     = "lifetime"
	TierCalendarYear = "calendar_year"
	TierRolling365d  = "rolling_365d"
)

// Tier threshold kinds (Tier.Kind).
const (
	TierBySpend  = "spend"
	TierByPoints = "points"
)

// tierCurrency is the currency min_spend is read in: ciclo keeps spend in
// cents (customers.total_spent_cents), so thresholds have two decimals.
const tierCurrency = "EUR"

var (
	tierKeys    = []string{"name", "min_spend", "min_points", "over"}
	tierWindows = []string{TierLifetime, TierCalendarYear, TierRolling365d}
)

// Tier is one loyalty tier of the rules file's `tiers:` list, e.g.
// {name: gold, min_spend: 1000, over: rolling_365d}. A customer is in the
// highest tier whose threshold it meets (the list goes from low to high);
// in none below the first.
type Tier struct {
	Name string
	// Kind is TierBySpend (min_spend) or TierByPoints (min_points).
	Kind string
	// Min is the threshold: spend in minor units (cents, as
	// customers.total_spent_cents) or points earned, over Over.
	Min int64
	// Over is TierLifetime (the default), TierCalendarYear or TierRolling365d.
	Over string
}

// TierProgress is what tiers are derived from: net spend (in cents) and
// points earned in each window.
type TierProgress struct {
	Spend  map[string]int64 // by window
	Points map[string]int64 // by window
}

// WindowStart returns where a window begins for an instant: the zero time
// for the lifetime, January 1st (UTC) for the calendar year, 365 days
// before now for the rolling window.
func WindowStart(window string, now time.Time) time.Time {
	switch window {
	case TierCalendarYear:
		return time.Date(now.UTC().Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	case TierRolling365d:
		return now.Add(-365 * 24 * time.Hour)
	}
	return time.Time{}
}

// TierFor returns the name of the highest tier p reaches, "" for none. It
// is the definition store.RecomputeTiers implements in SQL.
func (rs *RuleSet) TierFor(p TierProgress) string {
	tier := ""
	for _, t := range rs.Tiers {
		v := p.Spend[t.Over]
		if t.Kind == TierByPoints {
			v = p.Points[t.Over]
		}
		if v >= t.Min {
			tier = t.Name
		}
	}
	return tier
}

func (p *parser) tiers(n *yaml.Node) []Tier {
	const hint = "e.g. tiers: [{name: silver, min_spend: 200}, {name: gold, min_spend: 1000}]"
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "", hint, "tiers must be a list, got %s", kindName(n))
		return nil
	}
	var out []Tier
	for _, c := range n.Content {
		c = resolve(c)
		if c.Kind != yaml.MappingNode {
			p.errorf(c, "", hint, "a tier must be a mapping, got %s", kindName(c))
			continue
		}
		m := p.mapping(c, "", tierKeys, "unknown key %q in tier")
		t := Tier{Over: TierLifetime}
		if v, ok := m["name"]; ok {
			t.Name, _ = p.str(v, "", "tier name")
		} else {
			p.errorf(c, "", hint, "tier has no name")
		}
		if slices.ContainsFunc(out, func(o Tier) bool { return o.Name == t.Name }) {
			p.errorf(c, "", "", "duplicate tier %q", t.Name)
		}
		spend, hasSpend := m["min_spend"]
		points, hasPoints := m["min_points"]
		var threshold *yaml.Node
		switch {
		case hasSpend && hasPoints:
			p.errorf(points, "", "one threshold per tier", "tier %q has both min_spend and min_points", t.Name)
		case hasSpend:
			threshold, t.Kind = spend, TierBySpend
			cents, err := money.ParseMinor(spend.Value, tierCurrency)
			switch {
			case spend.Kind != yaml.ScalarNode || err != nil:
				p.errorf(spend, "", "a decimal amount in currency units, e.g. min_spend: 199.90", "tier %q min_spend %q is not an amount", t.Name, spend.Value)
			case cents <= 0:
				p.errorf(spend, "", "", "tier min_spend must be positive, got %s", spend.Value)
			}
			t.Min = cents
		case hasPoints:
			threshold, t.Kind = points, TierByPoints
			if i, ok := p.int(points, "", "tier min_points"); ok {
				if i <= 0 {
					p.errorf(points, "", "", "tier min_points must be positive, got %s", points.Value)
				}
				t.Min = int64(i)
			}
		default:
			p.errorf(c, "", hint, "tier %q needs min_spend or min_points", t.Name)
		}
		if v, ok := m["over"]; ok {
			if s, ok := p.str(v, "", "tier over"); ok {
				if !slices.Contains(tierWindows, s) {
					p.errorf(v, "", "over is one of: "+strings.Join(tierWindows, ", "), "unknown tier window %q", s)
				}
				t.Over = s
			}
		}
		// A tier listed after one measured the same way must need more:
		// otherwise whoever reaches the earlier one is in the later one too.
		for _, prev := range out {
			if threshold != nil && prev.Kind == t.Kind && prev.Over == t.Over && prev.Min >= t.Min {
				p.errorf(threshold, "", "list tiers from the lowest threshold to the highest, each higher than the one before",
					"tier %q (%s over %s) does not need more than %q before it (%s)", t.Name, t.threshold(), t.Over, prev.Name, prev.threshold())
			}
		}
		out = append(out, t)
	}
	return out
}

// threshold is the tier's threshold as the rules file writes it.
func (t Tier) threshold() string {
	if t.Kind == TierBySpend {
		return "min_spend " + strconv.FormatFloat(money.Major(t.Min, tierCurrency), 'f', -1, 64)
	}
	return "min_points " + strconv.FormatInt(t.Min, 10)
}
