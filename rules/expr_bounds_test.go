package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestExprBounds: expressions that would build huge strings fail at run
// time before building them; expressions too big are rejected at load.
func TestExprBounds(t *testing.T) {
	t.Parallel()
	parseWhen := func(t *testing.T, when string) (*RuleSet, error) {
		t.Helper()
		return Parse("r.yaml", []byte("version: 1\nstages: [a, b]\nrules:\n  - name: r\n    on: e\n    when: '"+when+"'\n    actions:\n      - stage: b\n"), testOpts())
	}
	in := Input{Customer: Customer{ID: "c", Name: "Ana", Stage: "a"}, Event: &Event{Type: "e"}, Now: time.Now()}

	runtimeErrors := []struct{ name, when string }{
		{"NestedRepeat", `repeat(repeat(customer.name, 1000000), 1000000) != ""`},
		{"RepeatOverTheBound", `len(repeat(customer.name, 2000000)) > 0`},
		{"Doubling", `let s = repeat(customer.name, 300000); let s2 = s + s; let s3 = s2 + s2; let s4 = s3 + s3; len(s4 + s4) > 0`},
	}
	for _, tc := range runtimeErrors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs, err := parseWhen(t, tc.when)
			if err != nil { // rejected at load: just as good
				require.ErrorContains(t, err, "longer than")
				return
			}
			_, err = rs.Rules[0].Match(in)
			require.ErrorContains(t, err, "longer than 1048576 bytes")
		})
	}

	t.Run("SmallStringsAreFine", func(t *testing.T) {
		t.Parallel()
		rs, err := parseWhen(t, `repeat(customer.name, 3) + "!" == "AnaAnaAna!"`)
		require.NoError(t, err)
		ok, err := rs.Rules[0].Match(in)
		require.NoError(t, err)
		require.True(t, ok)
	})

	t.Run("TooManyNodes", func(t *testing.T) {
		t.Parallel()
		_, err := parseWhen(t, strings.Repeat("customer.orders_count + ", MaxExprNodes)+"1 > 0")
		require.ErrorContains(t, err, "exceeds maximum allowed nodes")
	})

	t.Run("ArraysAreBudgeted", func(t *testing.T) {
		t.Parallel()
		rs, err := parseWhen(t, `len(map(1..100000000, # * 2)) > 0`)
		require.NoError(t, err)
		_, err = rs.Rules[0].Match(in)
		require.ErrorContains(t, err, "memory budget exceeded")
	})

	t.Run("TypeErrorsInArgumentsStillReported", func(t *testing.T) {
		t.Parallel()
		_, err := parseWhen(t, `days_since(customer.last_order) > 60`)
		require.ErrorContains(t, err, `customer has no field "last_order"`)
	})
}
