package rules

import (
	"strconv"
	"time"
)

// Occurrence is the key that makes a firing unique per customer and rule. An
// event rule fires once per event; a rule with a cooldown once per cooldown
// window (windows are aligned to the Unix epoch, so the key is the same for
// every process and retry that evaluates within one window).
func Occurrence(r *Rule, eventID int64, now time.Time) string {
	if r.Cooldown > 0 {
		secs := int64(r.Cooldown.Seconds())
		return "window:" + strconv.FormatInt(now.Unix()/secs, 10)
	}
	return "event:" + strconv.FormatInt(eventID, 10)
}
