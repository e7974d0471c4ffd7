package report

import "math"

// MinGroupDefault is the group size under which a lift is flagged as
// resting on too few customers.
const MinGroupDefault = 500

// Group is one arm of a comparison: customers, and how many converted.
type Group struct {
	Customers int64   `json:"customers"`
	Converted int64   `json:"converted"`
	Rate      float64 `json:"rate"`
}

// Lift compares the conversion of treated customers with a held-out
// control group.
type Lift struct {
	Treated Group `json:"treated"`
	Control Group `json:"control"`
	// Lift is (T − C) ÷ C, the treated rate's relative gain; null when the
	// control group's rate is 0.
	Lift *float64 `json:"lift"`
	// Z is the two-proportion z statistic (pooled standard error) and
	// PValue its two-sided p-value; both 0 when undefined (an empty group,
	// or everyone or no one converted).
	Z      float64 `json:"z"`
	PValue float64 `json:"p_value"`
	// TooFew is set when a group has fewer than MinGroupDefault customers;
	// Note then says so in words.
	TooFew bool   `json:"too_few"`
	Note   string `json:"note,omitempty"`
}

// CompareGroups computes the lift of treated over control and the
// two-proportion z-test: with pooled rate p = (xT + xC) ÷ (nT + nC),
// z = (pT − pC) ÷ √(p(1 − p)(1/nT + 1/nC)) and p-value = erfc(|z| ÷ √2).
func CompareGroups(treatedN, treatedConverted, controlN, controlConverted int64) Lift {
	l := Lift{
		Treated: Group{Customers: treatedN, Converted: treatedConverted},
		Control: Group{Customers: controlN, Converted: controlConverted},
	}
	if treatedN > 0 {
		l.Treated.Rate = float64(treatedConverted) / float64(treatedN)
	}
	if controlN > 0 {
		l.Control.Rate = float64(controlConverted) / float64(controlN)
	}
	if l.Control.Rate > 0 {
		v := (l.Treated.Rate - l.Control.Rate) / l.Control.Rate
		l.Lift = &v
	}
	if treatedN > 0 && controlN > 0 {
		pooled := float64(treatedConverted+controlConverted) / float64(treatedN+controlN)
		se := math.Sqrt(pooled * (1 - pooled) * (1/float64(treatedN) + 1/float64(controlN)))
		if se > 0 {
			l.Z = (l.Treated.Rate - l.Control.Rate) / se
			l.PValue = math.Erfc(math.Abs(l.Z) / math.Sqrt2)
		}
	}
	if treatedN < MinGroupDefault || controlN < MinGroupDefault {
		l.TooFew = true
		l.Note = "too few customers: under 500 in a group, the lift is not reliable"
	}
	return l
}
