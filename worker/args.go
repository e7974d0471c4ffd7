// Package worker runs ciclo's jobs on River: it evaluates rules when an event
// arrives, fires matched rules (stage changes, coupons, queued deliveries) in
// one transaction each, and dispatches deliveries through channel adapters.
package worker

import (
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/store"
)

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
	if a.Channel == channels.WebhookName {
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

func (a DispatchBatchArgs) refs() []store.DeliveryRef {
	out := make([]store.DeliveryRef, len(a.Deliveries))
	for i, d := range a.Deliveries {
		out[i] = store.DeliveryRef{CustomerID: d.CustomerID, ID: d.ID}
	}
	return out
}
