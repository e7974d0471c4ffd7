package jobs

import (
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// QueueSweep is the queue of scheduled sweeps, their shards and the coupon
// expiry job, apart from event evaluation so a long sweep never delays it.
const QueueSweep = "sweep"

// SweepArgs asks for the scheduled rules named in Rules to be evaluated over
// all customers as of Tick. Its worker splits the work into shards.
type SweepArgs struct {
	// Tick is the schedule instant the sweep is for; rules see it as `now`
	// and it keys firings of rules without cooldown.
	Tick time.Time `json:"tick"`
	// Rules are the names of the rules due on this tick, in file order.
	Rules []string `json:"rules"`
}

// Kind is the job kind; it never changes once shipped.
func (SweepArgs) Kind() string { return "ciclo.sweep" }

// InsertOpts makes a sweep unique per rules and tick, so that a restart or a
// second leader never enqueues the same sweep twice.
func (SweepArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSweep, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// SweepShardArgs asks for one key range of a sweep to be evaluated.
type SweepShardArgs struct {
	Tick  time.Time `json:"tick"`
	Rules []string  `json:"rules"`
	// After and UpTo bound the customer ids of the shard: After < id <= UpTo;
	// "" means unbounded.
	After string `json:"after"`
	UpTo  string `json:"up_to"`
}

// Kind is the job kind; it never changes once shipped.
func (SweepShardArgs) Kind() string { return "ciclo.sweep_shard" }

// InsertOpts makes a shard unique per sweep and range.
func (SweepShardArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSweep, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// CouponExpiryArgs asks for coupon_expired events to be generated for the
// coupons that expired unredeemed.
type CouponExpiryArgs struct{}

// Kind is the job kind; it never changes once shipped.
func (CouponExpiryArgs) Kind() string { return "ciclo.coupon_expiry" }

// InsertOpts runs coupon expiry on the sweep queue, one at a time.
func (CouponExpiryArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueSweep, UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
}

// PointsExpiryArgs asks for the points lots that expired to be closed
// (points_expired events) and those about to expire to be reminded of
// (points_expiring events).
type PointsExpiryArgs struct{}

// Kind is the job kind; it never changes once shipped.
func (PointsExpiryArgs) Kind() string { return "ciclo.points_expiry" }

// InsertOpts runs points expiry on the sweep queue, one at a time.
func (PointsExpiryArgs) InsertOpts() river.InsertOpts {
	return CouponExpiryArgs{}.InsertOpts()
}

// TierSweepArgs asks for every customer's loyalty tier to be derived again
// from its data, so that tiers fall when a window rolls past.
type TierSweepArgs struct{}

// Kind is the job kind; it never changes once shipped.
func (TierSweepArgs) Kind() string { return "ciclo.tier_sweep" }

// InsertOpts runs the tier sweep on the sweep queue, one at a time.
func (TierSweepArgs) InsertOpts() river.InsertOpts {
	return CouponExpiryArgs{}.InsertOpts()
}

// ReportFoldArgs asks for the report rollups to be brought up to date with
// the rows written since the last fold (store.Store.FoldReports).
type ReportFoldArgs struct{}

// Kind is the job kind; it never changes once shipped.
func (ReportFoldArgs) Kind() string { return "ciclo.report_fold" }

// InsertOpts runs the fold on the sweep queue, one at a time.
func (ReportFoldArgs) InsertOpts() river.InsertOpts {
	return CouponExpiryArgs{}.InsertOpts()
}
