package rules

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadError(t *testing.T) {
	t.Parallel()

	t.Run("Format", func(t *testing.T) {
		t.Parallel()

		tests := []struct {
			name string
			err  *LoadError
			want string
		}{
			{name: "Full", err: &LoadError{File: "r.yaml", Line: 3, Column: 5, Rule: "a", Message: "bad", Hint: "fix it"}, want: `r.yaml:3:5: rule "a": bad (fix it)`},
			{name: "NoRule", err: &LoadError{File: "r.yaml", Line: 1, Column: 1, Message: "bad"}, want: `r.yaml:1:1: bad`},
			{name: "Warning", err: &LoadError{File: "r.yaml", Line: 2, Column: 3, Rule: "a", Message: "meh", Warning: true}, want: `r.yaml:2:3: warning: rule "a": meh`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				require.Equal(t, tt.want, tt.err.Error())
			})
		}
	})

	t.Run("ErrorsAs", func(t *testing.T) {
		t.Parallel()

		es := LoadErrors{{File: "f", Line: 1, Column: 1, Message: "one"}, {File: "f", Line: 2, Column: 1, Message: "two"}}
		err := fmt.Errorf("load rules: %w", &es)
		require.Equal(t, "load rules: f:1:1: one\nf:2:1: two", err.Error())
		var got *LoadErrors
		require.True(t, errors.As(err, &got))
		require.Len(t, *got, 2)
		var first *LoadError
		require.True(t, errors.As(err, &first))
		require.Equal(t, "one", first.Message)
	})

	t.Run("DidYouMean", func(t *testing.T) {
		t.Parallel()

		tests := []struct {
			name       string
			candidates []string
			want       string
		}{
			{name: "wehn", candidates: ruleKeys, want: `did you mean "when"?`},
			{name: "schedul", candidates: ruleKeys, want: `did you mean "schedule"?`},
			{name: "When", candidates: ruleKeys, want: `did you mean "when"?`},
			{name: "xyzzy", candidates: ruleKeys, want: ""},
			{name: "ordrs_count", candidates: customerFields, want: `did you mean "orders_count"?`},
			{name: "anything", candidates: nil, want: ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				require.Equal(t, tt.want, didYouMean(tt.name, tt.candidates))
			})
		}
	})
}
