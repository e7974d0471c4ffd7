package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCoalescer(t *testing.T) {
	t.Run("LoneCallRunsAtOnce", func(t *testing.T) {
		var rounds atomic.Int32
		c := &coalescer[int, int]{max: 10, timeout: time.Second, run: func(_ context.Context, ins []int) ([]int, error) {
			rounds.Add(1)
			return []int{ins[0] * 2}, nil
		}}
		out, err := c.do(context.Background(), 21)
		require.NoError(t, err)
		require.Equal(t, 42, out)
		require.EqualValues(t, 1, rounds.Load())
	})

	t.Run("CallsDuringARoundShareTheNext", func(t *testing.T) {
		release := make(chan struct{})
		var (
			mu    sync.Mutex
			sizes []int
		)
		c := &coalescer[int, int]{max: 4, timeout: 5 * time.Second, run: func(_ context.Context, ins []int) ([]int, error) {
			mu.Lock()
			sizes = append(sizes, len(ins))
			first := len(sizes) == 1
			mu.Unlock()
			if first {
				<-release // hold the first round while the others queue up
			}
			out := make([]int, len(ins))
			for i, in := range ins {
				out[i] = in * 10
			}
			return out, nil
		}}
		const n = 9
		got := make([]int, n)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); got[0], _ = c.do(context.Background(), 0) }()
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 }, time.Second, time.Millisecond)
		for i := 1; i < n; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); got[i], _ = c.do(context.Background(), i) }()
		}
		require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pending) == n-1 }, time.Second, time.Millisecond)
		close(release)
		wg.Wait()
		for i := range n {
			require.Equal(t, i*10, got[i], "each call gets its own answer")
		}
		// One round for the first call, then the eight waiting in rounds of at most four.
		require.Equal(t, []int{1, 4, 4}, sizes)
		require.False(t, c.busy)
	})

	t.Run("ErrorsReachEveryCallOfTheRound", func(t *testing.T) {
		boom := errors.New("boom")
		c := &coalescer[int, int]{max: 10, timeout: time.Second, run: func(context.Context, []int) ([]int, error) { return nil, boom }}
		_, err := c.do(context.Background(), 1)
		require.ErrorIs(t, err, boom)
	})

	t.Run("APanicDoesNotStrandTheOthers", func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int32
		c := &coalescer[int, int]{max: 10, timeout: time.Second, run: func(_ context.Context, ins []int) ([]int, error) {
			if calls.Add(1) == 1 {
				<-release
				panic("bad round")
			}
			return make([]int, len(ins)), nil
		}}
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			_, _ = c.do(context.Background(), 1)
		}()
		require.Eventually(t, func() bool { return calls.Load() == 1 }, time.Second, time.Millisecond)
		errs := make(chan error, 2)
		for range 2 {
			go func() { _, err := c.do(context.Background(), 2); errs <- err }()
		}
		require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pending) == 2 }, time.Second, time.Millisecond)
		close(release)
		require.Equal(t, "bad round", <-done, "the leader's panic propagates")
		// The waiting calls were not in the panicking round: they run in the next.
		require.NoError(t, <-errs)
		require.NoError(t, <-errs)
	})

	t.Run("TheLeadersCancelledContextDoesNotCancelTheRound", func(t *testing.T) {
		c := &coalescer[int, int]{max: 10, timeout: time.Second, run: func(ctx context.Context, ins []int) ([]int, error) {
			return []int{1}, ctx.Err()
		}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		out, err := c.do(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, 1, out)
	})
}
