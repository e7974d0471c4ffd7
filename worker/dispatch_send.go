package worker

import (
	"context"
	"fmt"
	"sync"

	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/store"
)

// send sends the messages of todo, several emails at a time, and sets each
// outcome. Messages not yet started when ctx ends are left queued, with no
// attempt counted.
func (w *dispatcher) send(ctx context.Context, job *rivertype.JobRow, todo []*sending) {
	parallel := dispatchBatchEmails
	if len(todo) > 0 && todo[0].dp.Delivery.Channel != "email" {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, s := range todo {
		if s.msg == nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			// Not tried: clear its frequency-cap claim, count no attempt,
			// keep the last attempt's error.
			s.err = fmt.Errorf("not sent before the job's time ran out: %w", ctx.Err())
			s.out = &store.Outcome{Status: store.DeliveryQueued, Error: s.dp.Delivery.LastError, At: w.now()}
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if w.cfg.beforeSend != nil {
				w.cfg.beforeSend(ctx, s.msg)
			}
			gate := w.sendGate(s.ch)
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				s.err = fmt.Errorf("not sent before the job's time ran out: %w", ctx.Err())
				s.out = &store.Outcome{Status: store.DeliveryQueued, Error: s.dp.Delivery.LastError, At: w.now()}
				return
			}
			defer func() { <-gate }()
			guard, err := store.GuardSend(ctx, w.pool, store.DeliveryRef{CustomerID: s.dp.Delivery.CustomerID, ID: s.dp.Delivery.ID})
			switch {
			case err != nil:
				// Not tried: the job's retry (or, in a batch, the
				// delivery's own job) sends it.
				s.err = err
				s.out = &store.Outcome{Status: store.DeliveryQueued, Error: err.Error(), At: w.now()}
				return
			case guard.Erased:
				w.erased(s)
				return
			}
			res, err := s.ch.Send(ctx, s.msg)
			guard.Release(ctx)
			w.sent(job, s, res, err)
		}()
	}
	wg.Wait()
}

// erased records that s's customer was erased after its delivery was read
// (see store.SendGuard): the delivery, now the anonymous customer's, is
// suppressed as any delivery to an erased address is.
func (w *dispatcher) erased(s *sending) {
	d := s.dp.Delivery
	d.CustomerID = store.AnonymousID(d.CustomerID)
	s.dp.Delivery = d
	s.msg = nil
	s.out = &store.Outcome{Status: store.DeliverySuppressed, Error: erasedReason, At: w.now()}
}

// sendGate bounds the sends of channel ch that hold a store.SendGuard, and
// so a pool connection each, at once: twice the channel's own concurrency
// (channels.InFlighter), so that a send's guard round trip overlaps the
// others' exchanges, or guardedSendsDefault.
func (w *dispatcher) sendGate(ch channels.Channel) chan struct{} {
	if g, ok := w.gates.Load(ch); ok {
		return g.(chan struct{})
	}
	n := guardedSendsDefault
	if f, ok := ch.(channels.InFlighter); ok && f.MaxInFlight() > 0 {
		n = 2 * f.MaxInFlight()
	}
	g, _ := w.gates.LoadOrStore(ch, make(chan struct{}, n))
	return g.(chan struct{})
}

// guardedSendsDefault bounds the guarded sends at once of a channel that
// does not say how many it sends at once.
const guardedSendsDefault = 4

// GuardedSendsMax is the most pool connections a dispatcher holds in send
// guards, with the SMTP channel's default pool: for the pool's sizing.
const GuardedSendsMax = 2*channels.SMTPPoolSizeDefault + guardedSendsDefault
