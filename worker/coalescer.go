package worker

import (
	"context"
	"errors"
	"sync"
	"time"
)

// coalescer runs the calls that arrive while an earlier round is in flight
// together, in the next round (group commit). A lone call runs at once, so
// it adds no wait; under load one round trip to Postgres serves many jobs.
// The dispatch worker uses it so that single-delivery jobs running at the
// same moment read and record their deliveries together.
type coalescer[In, Out any] struct {
	// max is the most calls in one round.
	max int
	// timeout bounds a round, which runs on behalf of every call in it and
	// so is not cancelled with the context of the call that runs it.
	timeout time.Duration
	// run does a round: outs[i] answers ins[i].
	run func(ctx context.Context, ins []In) ([]Out, error)

	mu      sync.Mutex
	pending []*coalescedCall[In, Out]
	busy    bool // a round is running; then the next one is led by pending[0]
}

type coalescedCall[In, Out any] struct {
	in  In
	out Out
	err error
	// lead receives true when the call is to run the next round itself,
	// false when its round ran and out and err are set.
	lead chan bool
}

// do runs in in the next round and returns its answer.
func (c *coalescer[In, Out]) do(ctx context.Context, in In) (Out, error) {
	call := &coalescedCall[In, Out]{in: in, lead: make(chan bool, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, call)
	lead := !c.busy
	c.busy = true
	c.mu.Unlock()
	if !lead && !<-call.lead {
		return call.out, call.err
	}

	// Leading: the round takes call (first in line) and those behind it.
	c.mu.Lock()
	n := min(len(c.pending), c.max)
	round := c.pending[:n:n]
	c.pending = append([]*coalescedCall[In, Out](nil), c.pending[n:]...)
	c.mu.Unlock()
	defer c.handOff(call, round)
	ins := make([]In, len(round))
	for i, r := range round {
		ins[i] = r.in
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	defer cancel()
	outs, err := c.run(rctx, ins)
	for i, r := range round {
		r.err = err
		if err == nil {
			r.out = outs[i]
		}
	}
	return call.out, call.err
}

// handOff answers the other calls of the leader's round and passes the lead
// to the next waiting call. It also runs when the round panics: the other
// calls then get errCoalescedPanic instead of waiting forever.
func (c *coalescer[In, Out]) handOff(leader *coalescedCall[In, Out], round []*coalescedCall[In, Out]) {
	p := recover()
	for _, r := range round {
		if p != nil {
			var zero Out
			r.out, r.err = zero, errCoalescedPanic
		}
		if r != leader {
			r.lead <- false
		}
	}
	c.mu.Lock()
	if len(c.pending) > 0 {
		c.pending[0].lead <- true
	} else {
		c.busy = false
	}
	c.mu.Unlock()
	if p != nil {
		panic(p)
	}
}

// errCoalescedPanic answers the calls of a round that panicked.
var errCoalescedPanic = errors.New("a coalesced database round panicked")
