package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRulesEnv(t *testing.T) {
	t.Parallel()

	t.Run("DocsAreUpToDate", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runCLI(t, "rules", "env", "--markdown")
		require.Equal(t, 0, code)
		committed, err := os.ReadFile(filepath.Join("..", "..", "docs", "rules.md"))
		require.NoError(t, err)
		require.Equal(t, stdout, string(committed), "docs/rules.md is stale: run go generate ./cmd/ciclo")
	})

	t.Run("Text", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runCLI(t, "rules", "env")
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "  customer.orders_count      int     Number of orders")
		require.Contains(t, stdout, "days_since(t time) float")
	})
}
