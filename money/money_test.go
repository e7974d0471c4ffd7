package money

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMinor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		amount   string
		currency string
		want     int64
		wantErr  string
	}{
		{name: "TwoDecimals", amount: "243.00", currency: "USD", want: 24300},
		{name: "OneDecimal", amount: "19.9", currency: "EUR", want: 1990},
		{name: "Whole", amount: "5", currency: "EUR", want: 500},
		{name: "TrailingZeros", amount: "1.230", currency: "EUR", want: 123},
		{name: "Yen", amount: "1200", currency: "JPY", want: 1200},
		{name: "YenWithZeroDecimals", amount: "1200.00", currency: "JPY", want: 1200},
		{name: "Dinar", amount: "1.234", currency: "KWD", want: 1234},
		{name: "Negative", amount: "-1.50", currency: "EUR", want: -150},
		{name: "Zero", amount: "0.00", currency: "EUR", want: 0},
		{name: "Spaces", amount: " 7.10 ", currency: "GBP", want: 710},
		{name: "SubCent", amount: "1.235", currency: "EUR", wantErr: "EUR has 2 decimals"},
		{name: "Comma", amount: "1,50", currency: "EUR", wantErr: "decimal number"},
		{name: "Empty", amount: "", currency: "EUR", wantErr: "decimal number"},
		{name: "Exponent", amount: "1e3", currency: "EUR", wantErr: "decimal number"},
		{name: "TooLarge", amount: "999999999999999999", currency: "EUR", wantErr: "too large"},
		{name: "OverMax", amount: "100000000001", currency: "EUR", wantErr: "larger than"},
		{name: "BadCurrency", amount: "1", currency: "eur", wantErr: "ISO 4217"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseMinor(tt.amount, tt.currency)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestMajor(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 243.0, Major(24300, "USD"), 0)
	require.InDelta(t, 1200.0, Major(1200, "JPY"), 0)
	require.InDelta(t, 1.234, Major(1234, "KWD"), 1e-12)
	require.InDelta(t, 19.9, Major(1990, "EUR"), 1e-12)
}
