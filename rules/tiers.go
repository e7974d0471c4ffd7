package rules

import (
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Tier windows: what a tier's threshold is measured over.
const (
	TierLifetime     = "lifetime"
	TierCalendarYear = "calendar_year"
	TierRolling365d  = "rolling_365d"
)

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
	// MinSpend is the spend (in currency units) over Over that reaches the
	// tier; 0 when the tier is reached by points.
	MinSpend float64
	// MinPoints is the points earned over Over that reach the tier.
	MinPoints int64
	// Over is TierLifetime (the default), TierCalendarYear or TierRolling365d.
	Over string
}

// TierProgress is what tiers are derived from: spend and points earned in
// each window.
type TierProgress struct {
	Spend  map[string]float64 // by window
	Points map[string]int64   // by window
}

// WindowStart returns where a window begins for an instant: the zero time
// for the lifetime, January 1st (UTC) for the calendar year, a year before
// now for the rolling window.
func WindowStart(window string, now time.Time) time.Time {
	switch window {
	case TierCalendarYear:
		return time.Date(now.UTC().Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	case TierRolling365d:
		return now.Add(-365 * 24 * time.Hour)
	}
	return time.Time{}
}

// TierFor returns the name of the highest tier p reaches, "" for none.
func (rs *RuleSet) TierFor(p TierProgress) string {
	tier := ""
	for _, t := range rs.Tiers {
		if (t.MinSpend > 0 && p.Spend[t.Over] >= t.MinSpend) || (t.MinPoints > 0 && p.Points[t.Over] >= t.MinPoints) {
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
		switch {
		case hasSpend && hasPoints:
			p.errorf(points, "", "one threshold per tier", "tier %q has both min_spend and min_points", t.Name)
		case hasSpend:
			if f, ok := p.float(spend, "", "tier min_spend"); ok {
				if f <= 0 {
					p.errorf(spend, "", "", "tier min_spend must be positive, got %s", spend.Value)
				}
				t.MinSpend = f
			}
		case hasPoints:
			if i, ok := p.int(points, "", "tier min_points"); ok {
				if i <= 0 {
					p.errorf(points, "", "", "tier min_points must be positive, got %s", points.Value)
				}
				t.MinPoints = int64(i)
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
		if len(out) > 0 {
			prev := out[len(out)-1]
			if prev.Over == t.Over && ((t.MinSpend > 0 && prev.MinSpend >= t.MinSpend) || (t.MinPoints > 0 && prev.MinPoints >= t.MinPoints)) {
				p.warnf(c, "", "list tiers from the lowest to the highest", "tier %q does not need more than %q before it: a customer reaching it is also in %q", t.Name, prev.Name, prev.Name)
			}
		}
		out = append(out, t)
	}
	return out
}
