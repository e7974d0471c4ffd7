package rules

import (
	"fmt"
	"time"
)

// Defaults are the rules file's `defaults:` section; they apply to every
// non-transactional rule that does not override them.
type Defaults struct {
	// FrequencyCap limits marketing messages per customer
	// (defaults.frequency_cap: {max: 3, per: 7d}); nil means no cap.
	FrequencyCap *FrequencyCap
	// QuietHours is the window in the customer's local time during which
	// marketing messages wait (defaults.quiet_hours: "21:00-08:00"); nil
	// means none.
	QuietHours *QuietHours
	// Holdout is the share of matches every marketing rule holds out
	// (defaults.holdout: 10%) unless it sets its own; 0 means none.
	Holdout float64
	// PointsExpiringDays is how many days before a points lot expires its
	// points_expiring event is recorded (defaults.points_expiring_days: 3);
	// 0 means PointsExpiringDaysDefault.
	PointsExpiringDays int
	// PointsValue is what one point is worth in currency units when points
	// are redeemed as a coupon (defaults.points_value: 0.01); 0 means
	// points cannot be turned into coupons.
	PointsValue float64
}

// PointsExpiringDaysDefault is the default of Defaults.PointsExpiringDays.
const PointsExpiringDaysDefault = 3

// ExpiringDays is PointsExpiringDays or its default.
func (d Defaults) ExpiringDays() int {
	if d.PointsExpiringDays > 0 {
		return d.PointsExpiringDays
	}
	return PointsExpiringDaysDefault
}

// FrequencyCap allows at most Max marketing messages per customer in any
// window of length Per.
type FrequencyCap struct {
	// Max is the number of messages allowed per window, at least 1.
	Max int
	// Per is the window length, positive.
	Per time.Duration
}

// QuietHours is a daily window of local wall-clock time during which
// marketing messages are held. Start and End are offsets since local midnight
// (wall clock, so DST days behave as the clock on the wall says). The window
// is [Start, End) and wraps midnight when Start > End ("21:00-08:00").
type QuietHours struct {
	Start, End time.Duration
}

// String formats q as in the rules file, e.g. "21:00-08:00".
func (q *QuietHours) String() string {
	f := func(d time.Duration) string {
		return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return f(q.Start) + "-" + f(q.End)
}

// Contains reports whether the wall-clock time of local (in its own
// location; pass the customer's local time) lies in the quiet window.
func (q *QuietHours) Contains(local time.Time) bool {
	h, m, s := local.Clock()
	off := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second + time.Duration(local.Nanosecond())
	if q.Start <= q.End {
		return q.Start <= off && off < q.End
	}
	return off >= q.Start || off < q.End
}

// NextOpen returns the first instant at or after local that lies outside the
// quiet window: local itself when it is already outside, else the window's
// end (today's or tomorrow's), in local's location.
func (q *QuietHours) NextOpen(local time.Time) time.Time {
	if !q.Contains(local) {
		return local
	}
	y, mo, d := local.Date()
	h, m, _ := local.Clock()
	off := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute
	if q.Start > q.End && off >= q.Start {
		d++ // in the evening part of a window that wraps midnight: ends tomorrow
	}
	end := time.Date(y, mo, d, int(q.End/time.Hour), int(q.End%time.Hour/time.Minute), 0, 0, local.Location())
	if end.Before(local) { // only on odd DST transitions; never go back in time
		return local
	}
	return end
}
