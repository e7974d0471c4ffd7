package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// TestKeyBounds checks how many ranges a sweep is split into: by the shard
// size, raised to the minimum number of shards while each range keeps
// 10,000 customers.
func TestKeyBounds(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO customers (id) SELECT format('c-%s', lpad(i::text, 8, '0')) FROM generate_series(1, 40000) i`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "ANALYZE customers")
	require.NoError(t, err)
	st := store.New(db.Pool)

	tests := []struct {
		perShard, minShards int
		want                int // ranges
	}{
		{perShard: 100_000, minShards: 1, want: 1},
		{perShard: 100_000, minShards: 4, want: 4},  // one shard's worth, split for 4 workers
		{perShard: 100_000, minShards: 10, want: 4}, // but each range keeps 10,000 customers
		{perShard: 10_000, minShards: 1, want: 4},
		{perShard: 5_000, minShards: 4, want: 8},
	}
	for _, tc := range tests {
		bounds, err := st.KeyBounds(ctx, tc.perShard, tc.minShards)
		require.NoError(t, err)
		require.Len(t, bounds, tc.want-1, "perShard %d, minShards %d", tc.perShard, tc.minShards)
		require.IsIncreasing(t, bounds)
	}
}
