package examplerules

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/rules"
)

func TestWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		now  time.Time
		want string
	}{
		{time.Date(2026, 11, 23, 21, 26, 40, 0, time.UTC), "09:26-09:27"},
		{time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), "20:00-20:01"},
		{time.Date(2026, 11, 23, 11, 59, 59, 0, time.UTC), "23:59-00:00"},
		{time.Date(2026, 11, 23, 12, 0, 0, 0, time.FixedZone("CET", 3600)), "23:00-23:01"},
	} {
		require.Equal(t, tc.want, Window(tc.now), "at %s", tc.now)
	}
}

// TestPath checks the copy: only the quiet-hours line differs, and at any
// hour of the day the window stays clear of the next hour in UTC.
func TestPath(t *testing.T) {
	t.Parallel()
	path := Path(t)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	orig, err := os.ReadFile(filepath.Join("..", "..", FileName))
	require.NoError(t, err)

	origLines, gotLines := bytes.Split(orig, []byte("\n")), bytes.Split(got, []byte("\n"))
	require.Len(t, gotLines, len(origLines))
	var changed []string
	for i := range origLines {
		if !bytes.Equal(origLines[i], gotLines[i]) {
			changed = append(changed, string(origLines[i])+" → "+string(gotLines[i]))
		}
	}
	require.Len(t, changed, 1, "only the quiet_hours line changes: %q", changed)
	require.Contains(t, changed[0], "quiet_hours:")

	start := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)
	for m := 0; m < 24*60; m += 7 {
		now := start.Add(time.Duration(m) * time.Minute)
		out, err := rewrite(path, orig, Window(now))
		require.NoError(t, err)
		rs, err := rules.Parse(path, out, rules.ParseOptions{})
		require.NoError(t, err)
		qh := rs.Defaults.QuietHours
		require.NotNil(t, qh, "quiet hours stay configured")
		for d := time.Duration(0); d <= time.Hour; d += 30 * time.Second {
			require.False(t, qh.Contains(now.Add(d)), "%s contains %s", qh, now.Add(d))
		}
	}
}

func TestRewriteNeedsQuietHours(t *testing.T) {
	t.Parallel()
	_, err := rewrite("r.yaml", []byte("version: 1\nstages: [a]\nrules: []\n"), "09:00-09:01")
	require.ErrorContains(t, err, "no quiet_hours line")
}
