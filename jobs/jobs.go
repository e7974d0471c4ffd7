// Package jobs holds the contracts of ciclo's River jobs: their kinds, args
// and queues. Whoever enqueues a job (the events API, ingestion, the sweep
// scheduler) imports this package alone; the workers that run the jobs live in
// package worker.
package jobs

import (
	"github.com/riverqueue/river"
)

// DispatchMaxAttempts is how often a delivery is tried before it is
// recorded as failed. With River's default backoff (attempt⁴ seconds) the
// last try is about five hours after the first.
const DispatchMaxAttempts = 10

// webhookChannel is channels.WebhookName; this package does not import the
// channel adapters so that enqueuing a job never pulls in the dispatch
// runtime (a test checks the two agree).
const webhookChannel = "webhook"

// Queue names. Each kind of work has its own queue so a slow SMTP server
// never holds up rule evaluation.
const (
	QueueEvaluate = "evaluate"
	QueueEmail    = "email"
	QueueWebhook  = "webhook"
)

// EvaluateArgs asks for the event rules matching one event to be run.
type EvaluateArgs struct {
	CustomerID string `json:"customer_id"`
	EventID    int64  `json:"event_id"`
}

// Kind is the job kind; it never changes once shipped.
func (EvaluateArgs) Kind() string { return "ciclo.evaluate" }

// InsertOpts puts evaluation on its own queue.
func (EvaluateArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueEvaluate} }

// DispatchArgs asks for one delivery to be sent.
type DispatchArgs struct {
	CustomerID string `json:"customer_id"`
	DeliveryID int64  `json:"delivery_id"`
	Channel    string `json:"channel"`
}

// Kind is the job kind; it never changes once shipped.
func (DispatchArgs) Kind() string { return "ciclo.dispatch" }

// InsertOpts puts each channel's deliveries on the channel's queue.
func (a DispatchArgs) InsertOpts() river.InsertOpts {
	queue := QueueEmail
	if a.Channel == webhookChannel {
		queue = QueueWebhook
	}
	return river.InsertOpts{Queue: queue, MaxAttempts: DispatchMaxAttempts}
}

// DispatchBatchArgs asks for several deliveries of one channel to be sent;
// see DispatchBatchSize.
type DispatchBatchArgs struct {
	Channel    string        `json:"channel"`
	Deliveries []DeliveryRef `json:"deliveries"`
}

// DeliveryRef names one delivery in a DispatchBatchArgs.
type DeliveryRef struct {
	CustomerID string `json:"customer_id"`
	ID         int64  `json:"id"`
}

// Kind is the job kind; it never changes once shipped.
func (DispatchBatchArgs) Kind() string { return "ciclo.dispatch_batch" }

// InsertOpts puts each channel's deliveries on the channel's queue.
func (a DispatchBatchArgs) InsertOpts() river.InsertOpts {
	return DispatchArgs{Channel: a.Channel}.InsertOpts()
}
