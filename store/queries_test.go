package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNamedAsPgx: named's cached positional form is pgx's own rewrite of
// the named query, with the arguments in the same places, call after call.
func TestNamedAsPgx(t *testing.T) {
	for _, run := range [][]*NewEvent{
		{{CustomerID: "c1", Type: "order_placed", IdempotencyKey: "k", OccurredAt: time.Unix(1, 0), IsOrder: true, OrderTotal: 2.5}},
		{{CustomerID: "c2", Type: "signed_up", Email: "a@example.com", PayloadHash: []byte{1}}, {CustomerID: "c3", Type: "x"}},
	} {
		args := ingestSetArgs(run, &EvaluationJob{Kind: "k", Queue: "q", MaxAttempts: 3, Priority: 1}, len(run) > 1)
		wantSQL, wantArgs, err := args.RewriteQuery(context.Background(), nil, q("IngestEventSet"), nil)
		require.NoError(t, err)
		sql, got := named("IngestEventSet", args)
		require.Equal(t, wantSQL, sql)
		require.Equal(t, wantArgs, got)
	}
}
