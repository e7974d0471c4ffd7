package ingest

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/ciclohq/ciclo/store"
)

// Group commit: concurrent single-event calls share one ingest transaction,
// so that they share its commit (the WAL flush each commit waits for) and
// its round trip. A call joins the queue; while fewer than
// maxGroupCommits transactions are running, it starts one with the queue
// at once, else the queue waits for the next one to end. Nothing waits for
// a timer: a lone call goes alone, with no added latency. Each call is
// answered after its transaction commits, with its own event's outcome.
const (
	// maxGroupCommits is how many group transactions run at once.
	maxGroupCommits = 2
	// maxGroupEvents caps one group transaction's events.
	maxGroupEvents = 100
)

// grouper merges concurrent single-event calls of a Service.
type grouper struct {
	s        *Service
	mu       sync.Mutex
	queue    []*groupCall
	inflight int
}

// groupCall is one call waiting in a grouper.
type groupCall struct {
	ctx   context.Context
	event *store.NewEvent
	opts  Options // the call's: its errors name what it sent ("[0].email" in a list)
	done  chan struct{}
	res   Result
	err   error
}

// submit stores e, the one event of a call with opts, in a group
// transaction and returns its outcome, after the commit.
func (g *grouper) submit(ctx context.Context, e *store.NewEvent, opts Options) (Result, error) {
	c := &groupCall{ctx: ctx, event: e, opts: opts, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	var calls []*groupCall
	if g.inflight < maxGroupCommits {
		g.inflight++
		calls = g.take()
	}
	g.mu.Unlock()
	if calls != nil {
		go g.run(calls)
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		// The event may still be stored: a retry with its key says so.
		return Result{}, ctx.Err()
	}
}

// take removes up to maxGroupEvents calls from the queue, leaving out those
// whose callers are gone. The caller holds g.mu.
func (g *grouper) take() []*groupCall {
	var calls []*groupCall
	n := 0
	for _, c := range g.queue {
		n++
		if c.ctx.Err() == nil {
			calls = append(calls, c)
		}
		if len(calls) == maxGroupEvents {
			break
		}
	}
	g.queue = append(g.queue[:0], g.queue[n:]...)
	return calls
}

// run stores groups of calls until the queue is empty.
func (g *grouper) run(calls []*groupCall) {
	for {
		if len(calls) > 0 {
			g.flush(calls)
		}
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.inflight--
			g.mu.Unlock()
			return
		}
		calls = g.take()
		g.mu.Unlock()
	}
}

// flush stores calls' events in one transaction. If it fails, each call's
// event is stored alone, so that one event's refusal (a reused key with
// another payload) or error is its call's only, in its call's terms. The
// options differ only in how errors are worded (calls with coupons to
// redeem are not grouped), so the group transaction runs with none.
func (g *grouper) flush(calls []*groupCall) {
	if len(calls) == 1 {
		calls[0].alone(g.s)
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(calls[0].ctx))
	defer cancel()
	// The transaction is abandoned only when every caller is gone.
	var left atomic.Int32
	left.Store(int32(len(calls)))
	events := make([]*store.NewEvent, len(calls))
	for i, c := range calls {
		events[i] = c.event
		stop := context.AfterFunc(c.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	results, err := g.s.store(ctx, events, Options{}, false)
	if err == nil {
		for i, c := range calls {
			c.res = results[i]
			close(c.done)
		}
		return
	}
	for _, c := range calls {
		c.alone(g.s)
	}
}

// alone stores c's event in a transaction of its own and answers c.
func (c *groupCall) alone(s *Service) {
	results, err := s.store(c.ctx, []*store.NewEvent{c.event}, c.opts, false)
	if err == nil {
		c.res = results[0]
	}
	c.err = err
	close(c.done)
}
