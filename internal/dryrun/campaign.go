package dryrun

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// campaignSampleDefault is how many matching customers a campaign dry run lists.
const campaignSampleDefault = 10

// CampaignReport is what running a scheduled rule's sweep now would do
// (`ciclo rules run NAME --dry-run`).
type CampaignReport struct {
	Rule string    `json:"rule"`
	At   time.Time `json:"at"`
	// Customers is how many customers were evaluated.
	Customers int `json:"customers"`
	// Matched counts the customers whose condition holds; Errors those
	// whose condition failed at run time.
	Matched int `json:"matched"`
	Errors  int `json:"errors"`
	// HeldOut counts matches in the rule's holdout group (left untouched).
	HeldOut int `json:"held_out"`
	// Suppressed counts matches dispatch would not mail (no address,
	// bounced, suppressed, unsubscribed); only for rules that email.
	Suppressed int `json:"suppressed"`
	// Capped counts matches the frequency cap would hold back today.
	Capped int `json:"capped"`
	// WouldAct is Matched less HeldOut: the customers the rule would fire for.
	WouldAct int `json:"would_act"`
	// Sample lists a few matching customer ids, in id order.
	Sample []string `json:"sample"`
}

// Campaign evaluates scheduled rule name of rs over every customer as its
// sweep would at at, in a read-only transaction, and counts what would
// happen. It errors when the rule is unknown or not scheduled.
func Campaign(ctx context.Context, pool *pgxpool.Pool, rs *rules.RuleSet, name string, at time.Time) (*CampaignReport, error) {
	r := rs.Rule(name)
	if r == nil {
		return nil, fmt.Errorf("no rule %q in the rules file", name)
	}
	if r.Schedule == "" {
		return nil, fmt.Errorf("rule %q is an event rule (on: %s); only scheduled rules run on demand", name, r.On)
	}
	rep := &CampaignReport{Rule: name, At: at}
	emails := slices.ContainsFunc(r.Actions, func(a rules.Action) bool { return a.Email != nil })
	cap := r.FrequencyCap
	if cap == nil {
		cap = rs.Defaults.FrequencyCap
	}
	var acting []*store.Customer
	err := ReadOnly(ctx, pool, func(st *store.Store) error {
		err := st.EachCustomer(ctx, 0, func(c *store.Customer) error {
			rep.Customers++
			ok, err := r.Match(rules.Input{Customer: store.RuleCustomer(c), Now: at})
			switch {
			case err != nil:
				rep.Errors++
			case ok:
				rep.Matched++
				if len(rep.Sample) < campaignSampleDefault {
					rep.Sample = append(rep.Sample, c.ID)
				}
				if r.HeldOut(c.ID) {
					rep.HeldOut++
				} else if emails {
					acting = append(acting, c)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		rep.WouldAct = rep.Matched - rep.HeldOut
		for _, c := range acting {
			reason, err := suppressed(ctx, st, c, r.Transactional)
			if err != nil {
				return err
			}
			if reason != "" {
				rep.Suppressed++
			}
		}
		if cap == nil || r.Transactional || len(acting) == 0 {
			return nil
		}
		for chunk := range slices.Chunk(acting, 5000) {
			ids := make([]string, len(chunk))
			for i, c := range chunk {
				ids[i] = c.ID
			}
			sent, err := st.CountMarketingSent(ctx, ids, at.Add(-cap.Per))
			if err != nil {
				return err
			}
			for _, id := range ids {
				if sent[id] >= cap.Max {
					rep.Capped++
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}
