package worker

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
)

func TestDispatchJobs(t *testing.T) {
	var ds []*store.Delivery
	for i := range DispatchBatchSize + 1 {
		ds = append(ds, &store.Delivery{CustomerID: "c", ID: int64(i + 1), Channel: "email"})
	}
	ds = append(ds, &store.Delivery{CustomerID: "w", ID: 100, Channel: "webhook"})

	inserts := dispatchJobs(ds)
	require.Len(t, inserts, 3)
	batch, ok := inserts[0].Args.(jobs.DispatchBatchArgs)
	require.True(t, ok, "the first 50 emails share a batch job")
	require.Equal(t, "email", batch.Channel)
	require.Len(t, batch.Deliveries, DispatchBatchSize)
	require.Equal(t, jobs.DeliveryRef{CustomerID: "c", ID: 1}, batch.Deliveries[0])
	require.Equal(t, jobs.QueueEmail, batch.InsertOpts().Queue)
	require.Equal(t, jobs.DispatchArgs{CustomerID: "c", DeliveryID: 51, Channel: "email"}, inserts[1].Args, "the 51st goes on its own")
	require.Equal(t, jobs.DispatchArgs{CustomerID: "w", DeliveryID: 100, Channel: "webhook"}, inserts[2].Args)
	require.Equal(t, jobs.QueueWebhook, inserts[2].Args.(jobs.DispatchArgs).InsertOpts().Queue)
	require.Empty(t, dispatchJobs(nil))
}
