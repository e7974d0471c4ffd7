package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// capClaimTTL is how long a delivery claimed under the frequency cap counts
// as in flight. It only matters when a worker dies mid-send: the claim of a
// finished attempt is cleared when its outcome is recorded. It outlasts a
// batch job, whose claims are taken before its first send.
const capClaimTTL = dispatchBatchTimeout + 5*time.Minute

// claimUnderCapRound claims caps: a single one in the next coalesced round.
func (w *dispatcher) claimUnderCapRound(ctx context.Context, st *store.Store, caps []store.Cap) ([]store.CapClaim, error) {
	if len(caps) != 1 {
		return st.ClaimUnderCap(ctx, caps)
	}
	c, err := w.claims.do(ctx, caps[0])
	if err != nil {
		return nil, err
	}
	return []store.CapClaim{c}, nil
}

// claimUnderCap claims, in one round trip, the messages a frequency cap
// applies to; those over the cap are recorded as skipped_cap.
func (w *dispatcher) claimUnderCap(ctx context.Context, st *store.Store, todo []*sending, now time.Time) error {
	var (
		capped []*sending
		caps   []store.Cap
	)
	for _, s := range todo {
		if s.msg == nil || s.cap == nil {
			continue
		}
		d := s.dp.Delivery
		capped = append(capped, s)
		caps = append(caps, store.Cap{Delivery: store.DeliveryRef{CustomerID: d.CustomerID, ID: d.ID},
			Max: s.cap.Max, Since: now.Add(-s.cap.Per), StaleBefore: now.Add(-capClaimTTL), Now: now})
	}
	if len(caps) == 0 {
		return nil
	}
	claims, err := w.claimUnderCapRound(ctx, st, caps)
	if err != nil {
		return err
	}
	for i, c := range claims {
		if !c.Claimed {
			s := capped[i]
			s.msg = nil
			s.out = &store.Outcome{Status: store.DeliverySkippedCap, At: now,
				Error: fmt.Sprintf("frequency cap: %d marketing emails in the last %s (max %d)", c.Counted, s.cap.Per, s.cap.Max)}
		}
	}
	return nil
}

// frequencyCap is the cap in force for a rule: its own, else the default.
// A rule no longer in the rule set gets the default.
func frequencyCap(rs *rules.RuleSet, rule string) *rules.FrequencyCap {
	if r := rs.Rule(rule); r != nil && r.FrequencyCap != nil {
		return r.FrequencyCap
	}
	return rs.Defaults.FrequencyCap
}
