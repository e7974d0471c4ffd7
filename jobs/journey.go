package jobs

import "github.com/riverqueue/river"

// QueueJourney is the queue of journey step jobs.
const QueueJourney = "journey"

// JourneyStepBatchSize is the most runs one journey step job resumes.
const JourneyStepBatchSize = 1000

// JourneyStepArgs resumes journey runs after a wait (wait, wait_until, or
// a wait_for's timeout). It is inserted, scheduled at the wait's end, in
// the transaction of the step before; the runs that wait until the same
// instant share one job (up to JourneyStepBatchSize). A run is named with
// the seq it waits at: a job whose run has moved on (an awaited event came,
// an exit, an earlier try of this job) does nothing for it.
type JourneyStepArgs struct {
	Runs []JourneyRunRef `json:"runs"`
}

// JourneyRunRef names one run at one seq in a JourneyStepArgs.
type JourneyRunRef struct {
	CustomerID string `json:"customer_id"`
	RunID      int64  `json:"run_id"`
	Seq        int    `json:"seq"`
}

// Kind is the job kind; it never changes once shipped.
func (JourneyStepArgs) Kind() string { return "ciclo.journey_step" }

// InsertOpts puts journey steps on their own queue.
func (JourneyStepArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueJourney} }
