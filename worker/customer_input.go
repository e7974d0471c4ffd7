package worker

import (
	"time"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// ruleEvent is the view of a stored event that rules evaluate.
func ruleEvent(e *store.Event) *rules.Event {
	return &rules.Event{Type: e.Type, Properties: e.Properties, OccurredAt: e.OccurredAt}
}

// Clock returns the current time; tests pass a fixed or advancing one.
type Clock func() time.Time
