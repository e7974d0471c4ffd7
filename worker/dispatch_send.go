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
// attempt counted. The sends hold a store.SendGuard: a delivery whose
// customer was erased since it was read is suppressed instead.
func (w *dispatcher) send(ctx context.Context, job *rivertype.JobRow, todo []*sending) {
	release := w.guard(ctx, todo)
	if release == nil {
		return
	}
	defer release()
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
			w.notTried(s, ctx.Err())
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			res, err := s.ch.Send(ctx, s.msg)
			w.sent(job, s, res, err)
		}()
	}
	wg.Wait()
}

// guard takes the store.SendGuard of todo's messages, within the channel's
// gate (sendGate), suppresses those whose customer was erased, and returns
// what releases both; nil when nothing is left to send (each outcome set).
func (w *dispatcher) guard(ctx context.Context, todo []*sending) (release func()) {
	var (
		sending []*sending
		refs    []store.DeliveryRef
	)
	for _, s := range todo {
		if s.msg != nil {
			if w.cfg.beforeSend != nil {
				w.cfg.beforeSend(ctx, s.msg)
			}
			sending = append(sending, s)
			refs = append(refs, store.DeliveryRef{CustomerID: s.dp.Delivery.CustomerID, ID: s.dp.Delivery.ID})
		}
	}
	if len(sending) == 0 {
		return nil
	}
	gate := w.sendGate(sending[0].ch)
	select {
	case gate <- struct{}{}:
	case <-ctx.Done():
		for _, s := range sending {
			w.notTried(s, ctx.Err())
		}
		return nil
	}
	g, err := store.GuardSend(ctx, w.pool, refs)
	if err != nil {
		<-gate
		// Not tried: the job's retry (or, in a batch, each delivery's own
		// job) sends them.
		for _, s := range sending {
			s.msg, s.err = nil, err
			s.out = &store.Outcome{Status: store.DeliveryQueued, Error: err.Error(), At: w.now()}
		}
		return nil
	}
	left := 0
	for i, s := range sending {
		if g.Erased[i] {
			w.erased(s)
		} else {
			left++
		}
	}
	release = func() {
		g.Release(ctx)
		<-gate
	}
	if left == 0 {
		release()
		return nil
	}
	return release
}

// notTried leaves s queued because ctx ended before its send: its
// frequency-cap claim is cleared, no attempt counted, the last attempt's
// error kept.
func (w *dispatcher) notTried(s *sending, err error) {
	s.msg = nil
	s.err = fmt.Errorf("not sent before the job's time ran out: %w", err)
	s.out = &store.Outcome{Status: store.DeliveryQueued, Error: s.dp.Delivery.LastError, At: w.now()}
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

// sendGate bounds the dispatch jobs of channel ch that hold a
// store.SendGuard, and so a pool connection each, at once: twice the
// channel's own concurrency (channels.InFlighter), so that a job's guard
// round trips overlap the others' exchanges, or guardedSendsDefault.
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

// guardedSendsDefault bounds the guarded dispatch jobs at once of a channel
// that does not say how many messages it sends at once.
const guardedSendsDefault = 4

// GuardedSendsMax is the most pool connections a dispatcher holds in send
// guards, with the SMTP channel's default pool: for the pool's sizing.
const GuardedSendsMax = 2*channels.SMTPPoolSizeDefault + guardedSendsDefault
