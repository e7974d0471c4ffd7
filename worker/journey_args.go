package worker

import (
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
)

// journeyRefs names the runs of a journey step job as the store does.
func journeyRefs(a jobs.JourneyStepArgs) []store.RunRef {
	out := make([]store.RunRef, len(a.Runs))
	for i, r := range a.Runs {
		out[i] = store.RunRef{CustomerID: r.CustomerID, ID: r.RunID, Seq: r.Seq}
	}
	return out
}
