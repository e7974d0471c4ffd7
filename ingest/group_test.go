package ingest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/internal/testdb"
)

// TestGroupCommitAnswersEachCall: concurrent single-event calls share
// group transactions, yet each gets its own event's outcome: new events are
// stored with their jobs and facts, a repeated key with the same payload is
// one event and duplicates, and a reused key with another payload refuses
// that call alone (the group's others are stored).
func TestGroupCommitAnswersEachCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	svc := newService(db)
	type call struct {
		event *ingest.Event
		res   ingest.Result
		err   error
	}
	var calls []*call
	for i := range 30 {
		calls = append(calls, &call{event: &ingest.Event{CustomerID: fmt.Sprintf("c%d", i%7), Type: "order_placed",
			IdempotencyKey: fmt.Sprintf("new-%d", i), Properties: map[string]any{"total": 1.0}}})
	}
	for range 10 {
		calls = append(calls, &call{event: &ingest.Event{CustomerID: "same", Type: "order_placed", IdempotencyKey: "same-key",
			Properties: map[string]any{"total": 2.0}}})
	}
	for i := range 10 {
		calls = append(calls, &call{event: &ingest.Event{CustomerID: "other", Type: "order_placed", IdempotencyKey: "other-key",
			Properties: map[string]any{"total": float64(i + 1)}}})
	}
	for round := range 3 { // a few rounds: groups form whatever the scheduling
		var wg sync.WaitGroup
		for _, c := range calls {
			wg.Go(func() {
				res, err := svc.Ingest(ctx, []*ingest.Event{c.event}, ingest.Options{})
				if err == nil {
					c.res = res[0]
				}
				c.err = err
			})
		}
		wg.Wait()

		var sameID int64
		same, other, refused := 0, 0, 0
		for _, c := range calls {
			switch c.event.IdempotencyKey {
			case "same-key":
				require.NoError(t, c.err)
				if !c.res.Duplicate {
					same++
				}
				require.True(t, sameID == 0 || sameID == c.res.ID, "every call of a key gets the one event's id")
				sameID = c.res.ID
			case "other-key":
				var fe *ingest.FieldError
				if c.err != nil {
					require.ErrorAs(t, c.err, &fe)
					require.Equal(t, "idempotency_key", fe.Field)
					refused++
					continue
				}
				if !c.res.Duplicate {
					other++
				}
			default:
				require.NoError(t, c.err)
				require.NotZero(t, c.res.ID)
				require.Equal(t, round > 0, c.res.Duplicate, c.event.IdempotencyKey)
			}
		}
		if round == 0 {
			require.Equal(t, 1, same, "one call stores the repeated key's event")
			require.Equal(t, 1, other, "one payload of the reused key is stored")
		}
		require.Equal(t, 9, refused, "the other payloads of the reused key are refused")
		require.Equal(t, 32, db.Count(t, "events", ""), "round %d", round)
		require.Equal(t, 32, db.Count(t, "river_job", ""), "a job per stored event, none for duplicates or refusals")
		require.Equal(t, 9, db.Count(t, "customers c", "orders_count = (SELECT count(*) FROM events e WHERE e.customer_id = c.id)"),
			"facts count each stored event once")
	}
}
