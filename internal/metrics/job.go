package metrics

import (
	"context"
	"sync"
	"time"
)

// jobKey is the context key of a job's *Job.
type jobKey struct{}

// Job records the metrics of one River job's work attempt. What it records
// is held back until Flush, which the job middleware calls when the attempt
// succeeded, and dropped by Discard when it failed: a rolled-back firing is
// then not counted, and its retry counts it once.
//
// All methods are safe on a nil *Job and do nothing then; FromContext
// returns nil outside a job or when metrics are off.
type Job struct {
	m *Metrics

	mu      sync.Mutex
	pending []func()
}

// NewJob returns a recorder for one work attempt. Nil when m is nil.
func (m *Metrics) NewJob() *Job {
	if m == nil {
		return nil
	}
	return &Job{m: m}
}

// WithJob returns ctx carrying j, for FromContext.
func WithJob(ctx context.Context, j *Job) context.Context {
	if j == nil {
		return ctx
	}
	return context.WithValue(ctx, jobKey{}, j)
}

// FromContext returns the recorder of the job ctx belongs to, or nil.
func FromContext(ctx context.Context) *Job {
	j, _ := ctx.Value(jobKey{}).(*Job)
	return j
}

// RuleEvaluated records one evaluation of rule's condition: matched, or
// failed with err (also counted in ciclo_rule_errors_total).
func (j *Job) RuleEvaluated(rule string, matched bool, err error) {
	if j == nil {
		return
	}
	result := "no_match"
	switch {
	case err != nil:
		result = "error"
	case matched:
		result = "match"
	}
	j.later(func() {
		j.m.ruleEvaluations.WithLabelValues(rule, result).Inc()
		if err != nil {
			j.m.ruleErrors.WithLabelValues(rule).Inc()
		}
	})
}

// RuleFired records a new firing of rule.
func (j *Job) RuleFired(rule string) {
	if j == nil {
		return
	}
	j.later(func() { j.m.ruleFirings.WithLabelValues(rule).Inc() })
}

// StageTransition records a customer moved from one stage to another by a
// rule; from is "" for a customer that had none.
func (j *Job) StageTransition(from, to string) {
	if j == nil {
		return
	}
	j.later(func() { j.m.stageTransitions.WithLabelValues(from, to).Inc() })
}

// ObserveSweep records a sweep's duration at once (a sweep that took long
// took long whether or not it then failed).
func (j *Job) ObserveSweep(rule string, d time.Duration) {
	if j == nil {
		return
	}
	j.m.ObserveSweep(rule, d)
}

// Flush counts everything recorded so far.
func (j *Job) Flush() {
	if j == nil {
		return
	}
	j.mu.Lock()
	pending := j.pending
	j.pending = nil
	j.mu.Unlock()
	for _, f := range pending {
		f()
	}
}

// Discard drops everything recorded so far.
func (j *Job) Discard() {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.pending = nil
	j.mu.Unlock()
}

func (j *Job) later(f func()) {
	j.mu.Lock()
	j.pending = append(j.pending, f)
	j.mu.Unlock()
}
