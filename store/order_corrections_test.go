package store_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// TestOrderCorrections checks that order_cancelled and order_refunded
// events correct the facts of the order they name, in the ingest statement.
func TestOrderCorrections(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

	placed := func(customer, orderID string, total float64) *store.NewEvent {
		return &store.NewEvent{CustomerID: customer, Type: "order_placed", IdempotencyKey: "placed:" + orderID,
			OccurredAt: at, ReceivedAt: at, IsOrder: true, OrderTotal: total,
			Properties: map[string]any{"order_id": orderID, "total": total}}
	}
	refunded := func(customer, orderID, refundID string, amount float64) *store.NewEvent {
		return &store.NewEvent{CustomerID: customer, Type: "order_refunded", IdempotencyKey: "refund:" + refundID,
			OccurredAt: at, ReceivedAt: at, Properties: map[string]any{"order_id": orderID, "amount": amount}}
	}
	cancelled := func(customer, orderID string) *store.NewEvent {
		return &store.NewEvent{CustomerID: customer, Type: "order_cancelled", IdempotencyKey: "cancel:" + orderID,
			OccurredAt: at, ReceivedAt: at, Properties: map[string]any{"order_id": orderID}}
	}
	type facts struct {
		orders int
		cents  int64
	}
	run := func(t *testing.T, customer string, events ...*store.NewEvent) facts {
		t.Helper()
		st, _ := setup(t, db)
		for _, e := range events {
			_, err := st.IngestEvent(ctx, e, "reach", "v1")
			require.NoError(t, err)
		}
		c, err := st.GetCustomer(ctx, customer)
		require.NoError(t, err)
		return facts{c.OrdersCount, int64(math.Round(c.TotalSpent * 100))}
	}

	tests := []struct {
		name   string
		events []*store.NewEvent
		want   facts
	}{
		{"PartialRefundSubtractsTheAmount", []*store.NewEvent{placed("c", "1", 100), placed("c", "2", 20.50), refunded("c", "1", "r1", 30.25)}, facts{2, 9025}},
		{"RefundsNeverExceedTheOrder", []*store.NewEvent{placed("c", "1", 100), refunded("c", "1", "r1", 70), refunded("c", "1", "r2", 70)}, facts{1, 0}},
		{"CancellationUncountsAndSubtractsTheTotal", []*store.NewEvent{placed("c", "1", 100), placed("c", "2", 20), cancelled("c", "1")}, facts{1, 2000}},
		{"CancellationAfterRefundSubtractsTheRest", []*store.NewEvent{placed("c", "1", 100), refunded("c", "1", "r1", 40), cancelled("c", "1")}, facts{0, 0}},
		{"RefundAfterCancellationChangesNothing", []*store.NewEvent{placed("c", "1", 100), placed("c", "2", 5), cancelled("c", "1"), refunded("c", "1", "r1", 40)}, facts{1, 500}},
		{"ReplayedCancellationCountsOnce", []*store.NewEvent{placed("c", "1", 100), placed("c", "2", 5), cancelled("c", "1"), cancelled("c", "1")}, facts{1, 500}},
		{"UnknownOrderChangesNothing", []*store.NewEvent{placed("c", "1", 100), cancelled("c", "9"), refunded("c", "9", "r1", 10)}, facts{1, 10000}},
		{"OtherCustomersOrderChangesNothing", []*store.NewEvent{placed("d", "1", 50), placed("c", "1", 100), cancelled("d", "1")}, facts{1, 10000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, run(t, "c", tt.events...))
		})
	}
}
