package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
)

// TestRuleSets checks that every rules file a row starts ciclo with loads
// the way `ciclo serve` loads it (templates checked), so a row fails here
// rather than in the middle of a bench run.
func TestRuleSets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		scheduled int
	}{
		{"NoFire", NoFireRules, 10},
		{"NoFireFullScan", NoFireRules + FullScanRule, 11},
		{"TenPercent", TenPercentRules(), 10},
		{"Ingest", ingestRules, 0},
		{"EventEmail", eventEmailRules, 0},
		{"Dispatch", dispatchRules, 1},
		{"Jobs", jobsRules, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "rules.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tt.src), 0o600))
			rs, _, err := app.LoadRules(path)
			require.NoError(t, err)
			require.Len(t, rs.Scheduled(), tt.scheduled)
		})
	}
}

func TestNum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.5321, "0.532"}, {12.34, "12.3"}, {99.5, "99.5"}, {123.4, "123"},
		{12345, "12,300"}, {1234567, "1,230,000"}, {-4567, "-4,570"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, num(tt.in), "num(%v)", tt.in)
	}
}
