package rules

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQuietHours(t *testing.T) {
	t.Parallel()

	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	at := func(day, h, m int) time.Time { return time.Date(2025, 3, day, h, m, 0, 0, berlin) }
	hm := func(h, m int) time.Duration { return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute }

	night := &QuietHours{Start: hm(21, 0), End: hm(8, 0)} // wraps midnight
	lunch := &QuietHours{Start: hm(12, 0), End: hm(13, 30)}

	tests := []struct {
		name         string
		q            *QuietHours
		local        time.Time
		wantContains bool
		wantNextOpen time.Time
	}{
		{name: "WrapEvening", q: night, local: at(10, 22, 15), wantContains: true, wantNextOpen: at(11, 8, 0)},
		{name: "WrapAtStart", q: night, local: at(10, 21, 0), wantContains: true, wantNextOpen: at(11, 8, 0)},
		{name: "WrapMidnight", q: night, local: at(11, 0, 0), wantContains: true, wantNextOpen: at(11, 8, 0)},
		{name: "WrapEarlyMorning", q: night, local: at(11, 7, 59), wantContains: true, wantNextOpen: at(11, 8, 0)},
		{name: "WrapAtEnd", q: night, local: at(11, 8, 0), wantContains: false, wantNextOpen: at(11, 8, 0)},
		{name: "WrapDaytime", q: night, local: at(11, 14, 0), wantContains: false, wantNextOpen: at(11, 14, 0)},
		{name: "WrapJustBefore", q: night, local: at(11, 20, 59), wantContains: false, wantNextOpen: at(11, 20, 59)},
		{name: "WrapMonthEnd", q: night, local: time.Date(2025, 3, 31, 23, 0, 0, 0, berlin), wantContains: true, wantNextOpen: time.Date(2025, 4, 1, 8, 0, 0, 0, berlin)},
		{name: "WrapOverDST", q: night, local: time.Date(2025, 3, 29, 22, 0, 0, 0, berlin), wantContains: true, wantNextOpen: time.Date(2025, 3, 30, 8, 0, 0, 0, berlin)},
		{name: "DaytimeInside", q: lunch, local: at(10, 12, 45), wantContains: true, wantNextOpen: at(10, 13, 30)},
		{name: "DaytimeBefore", q: lunch, local: at(10, 11, 59), wantContains: false, wantNextOpen: at(10, 11, 59)},
		{name: "DaytimeAfter", q: lunch, local: at(10, 13, 30), wantContains: false, wantNextOpen: at(10, 13, 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			require.Equal(t, tt.wantContains, tt.q.Contains(tt.local))
			got := tt.q.NextOpen(tt.local)
			require.True(t, tt.wantNextOpen.Equal(got), "NextOpen = %v, want %v", got, tt.wantNextOpen)
			require.False(t, tt.q.Contains(got))
			require.False(t, got.Before(tt.local))
		})
	}

	t.Run("String", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "21:00-08:00", night.String())
	})
}
