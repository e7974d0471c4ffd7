package main

import (
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// TestHelp checks that every command explains itself in --help.
func TestHelp(t *testing.T) {
	t.Parallel()

	var walk func(*cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		n++
		require.NotEmpty(t, c.Short, c.CommandPath())
		if c.Runnable() {
			require.NotEmpty(t, c.Long, c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	require.GreaterOrEqual(t, n, 12)

	stdout, _, code := runCLI(t, "rules", "test", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "READ ONLY")
	require.Contains(t, stdout, "--customer string")
}
