package rules

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()

	const day = 24 * time.Hour
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "Days", in: "14d", want: 14 * day},
		{name: "Weeks", in: "2w", want: 14 * day},
		{name: "WeeksAndDays", in: "1w2d", want: 9 * day},
		{name: "Hours", in: "36h", want: 36 * time.Hour},
		{name: "GoUnits", in: "1h30m15s", want: time.Hour + 30*time.Minute + 15*time.Second},
		{name: "DaysAndHours", in: "1d12h", want: 36 * time.Hour},
		{name: "Fraction", in: "1.5d", want: 36 * time.Hour},
		{name: "Millis", in: "250ms", want: 250 * time.Millisecond},
		{name: "Micro", in: "3µs", want: 3 * time.Microsecond},
		{name: "Zero", in: "0", want: 0},
		{name: "ZeroDays", in: "0d", want: 0},
		{name: "Negative", in: "-2d", want: -2 * day},
		{name: "Plus", in: "+1w", want: 7 * day},
		{name: "Empty", in: "", wantErr: `invalid duration ""`},
		{name: "NoUnit", in: "14", wantErr: `missing unit in duration "14"`},
		{name: "UnknownUnit", in: "3y", wantErr: `unknown unit "y" in duration "3y"`},
		{name: "Spaces", in: "90 days", wantErr: `invalid duration "90 days": no spaces allowed`},
		{name: "OnlySign", in: "-", wantErr: `invalid duration "-"`},
		{name: "NoNumber", in: "d", wantErr: `invalid duration "d"`},
		{name: "TwoDots", in: "1.2.3d", wantErr: `invalid duration "1.2.3d"`},
		{name: "Overflow", in: "100000000w", wantErr: `invalid duration "100000000w": too large`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
