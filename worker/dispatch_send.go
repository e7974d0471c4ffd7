package worker

import (
	"context"
	"fmt"
	"sync"

	"github.com/riverqueue/river/rivertype"

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
			res, err := s.ch.Send(ctx, s.msg)
			w.sent(job, s, res, err)
		}()
	}
	wg.Wait()
}
