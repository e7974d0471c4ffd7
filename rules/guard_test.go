package rules

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnguardedReads(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		when string
		want []string // paths, in order
	}{
		{name: "ComparedBare", when: `event.properties.score >= 9`, want: []string{"event.properties.score"}},
		{name: "Brackets", when: `event.properties["score"] < 7`, want: []string{"event.properties.score"}},
		{name: "Attribute", when: `customer.attributes.age + 1 > 18`, want: []string{"customer.attributes.age"}},
		{name: "Negated", when: `-event.properties.delta > 0`, want: []string{"event.properties.delta"}},
		{name: "BothSides", when: `event.properties.a > customer.attributes.b`, want: []string{"event.properties.a", "customer.attributes.b"}},
		{name: "InsideHelper", when: `days_since(now) > 1 || event.properties.n > 2`, want: []string{"event.properties.n"}},
		{name: "Default", when: `(event.properties.score ?? 0) >= 9`},
		{name: "NotNil", when: `event.properties.score != nil && event.properties.score >= 9`},
		{name: "NilOr", when: `event.properties.score == nil || event.properties.score < 7`},
		{name: "InMap", when: `"score" in event.properties && event.properties.score >= 9`},
		{name: "TypeTest", when: `type(event.properties.score) in ["int", "float"] && event.properties.score >= 9`},
		{name: "Ternary", when: `event.properties.score != nil ? event.properties.score >= 9 : false`},
		{name: "GuardAfterIsTooLate", when: `event.properties.score >= 9 && event.properties.score != nil`, want: []string{"event.properties.score"}},
		{name: "OtherGuarded", when: `event.properties.a != nil && event.properties.b > 1`, want: []string{"event.properties.b"}},
		{name: "Equality", when: `event.properties.score == 10 && customer.attributes.vip != true`},
		{name: "TypedFields", when: `customer.orders_count >= 2 && customer.total_spent > 100`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, u := range unguardedReads(tt.when) {
				got = append(got, u.path)
			}
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("WarningPosition", func(t *testing.T) {
		t.Parallel()
		rs, err := Parse("r.yaml", []byte(`version: 1
stages: [reach, loyalty]
rules:
  - name: promoter
    on: nps_answered
    when: customer.stage != "loyalty" && event.properties.score >= 9
    actions:
      - stage: loyalty
`), testOpts())
		require.NoError(t, err)
		require.Len(t, rs.Warnings, 1)
		require.Equal(t, `r.yaml:6:42: warning: rule "promoter": when: event.properties.score is used as a number (>=) without a guard: when it is missing or not a number the condition fails at run time and the rule is skipped (write (event.properties.score ?? 0), or test type(event.properties.score) in ["int", "float"] && … first)`, rs.Warnings[0].Error())
	})
}
