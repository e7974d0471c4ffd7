package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/ciclohq/ciclo/store"
)

// reverseOrderPoints takes back the points the order of a refund or
// cancellation event earned (store.Store.ReverseOrderPoints: once per
// order, whichever of its refunds or its cancellation comes first; a debt
// if they were spent) and records its points_spent event; it returns that
// event, for evaluation, or nothing for other events and orders that
// earned no points.
func reverseOrderPoints(ctx context.Context, st *store.Store, ev *store.Event, now time.Time) ([]store.EventRef, error) {
	if ev.Type != store.EventOrderRefunded && ev.Type != store.EventOrderCancelled {
		return nil, nil
	}
	var order string
	switch v := ev.Properties["order_id"].(type) {
	case string:
		order = v
	case float64:
		order = strconv.FormatFloat(v, 'f', -1, 64)
	}
	if order == "" {
		return nil, nil
	}
	op, err := st.ReverseOrderPoints(ctx, ev.CustomerID, order, ev.Type, "reverse:order:"+order, now)
	if err != nil {
		return nil, err
	}
	return st.InsertPointsEvents(ctx, store.SpentEvents(ev.CustomerID, op), now)
}
