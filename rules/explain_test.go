package rules

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExplain(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	parse := func(t *testing.T, when string) *Rule {
		t.Helper()
		src := "version: 1\nrules:\n  - name: r\n    on: order_placed\n    when: '" + when + "'\n    actions: [{stage: conversion}]\n"
		rs, err := Parse("r.yaml", []byte(src), ParseOptions{})
		require.NoError(t, err)
		return rs.Rule("r")
	}
	in := Input{
		Customer: Customer{OrdersCount: 2, Stage: "at_risk", LastOrderAt: now.Add(-90 * 24 * time.Hour)},
		Event:    &Event{Type: "order_placed", Properties: map[string]any{"total": 30.0}},
		Now:      now,
	}

	tests := []struct {
		name string
		when string
		want *Condition
	}{
		{
			name: "NoWhen",
			want: &Condition{Source: "true", Value: true},
		},
		{
			name: "Leaf",
			when: "customer.orders_count == 1",
			want: &Condition{Source: "customer.orders_count == 1", Value: false},
		},
		{
			name: "AndChainIsFlattened",
			when: `customer.orders_count >= 2 && customer.stage in ["conversion", "at_risk"] && days_since(customer.last_order_at) >= 60`,
			want: &Condition{
				Source: `customer.orders_count >= 2 && customer.stage in ["conversion", "at_risk"] && days_since(customer.last_order_at) >= 60`,
				Op:     "&&", Value: true,
				Operands: []*Condition{
					{Source: "customer.orders_count >= 2", Value: true},
					{Source: `customer.stage in ["conversion", "at_risk"]`, Value: true},
					{Source: "days_since(customer.last_order_at) >= 60", Value: true},
				},
			},
		},
		{
			name: "MixedAndOrNot",
			when: `event.properties.total > 50 || not (customer.unsubscribed or customer.stage == "churned")`,
			want: &Condition{
				Source: `event.properties.total > 50 || not (customer.unsubscribed or customer.stage == "churned")`,
				Op:     "||", Value: true,
				Operands: []*Condition{
					{Source: "event.properties.total > 50", Value: false},
					{
						Source: `not (customer.unsubscribed or customer.stage == "churned")`, Op: "!", Value: true,
						Operands: []*Condition{{
							Source: `customer.unsubscribed or customer.stage == "churned"`, Op: "||", Value: false,
							Operands: []*Condition{
								{Source: "customer.unsubscribed", Value: false},
								{Source: `customer.stage == "churned"`, Value: false},
							},
						}},
					},
				},
			},
		},
		{
			name: "RuntimeErrorIsShownNotFatal",
			when: "customer.orders_count > 1 && event.properties.score >= 9",
			want: &Condition{
				Source: "customer.orders_count > 1 && event.properties.score >= 9",
				Op:     "&&",
				Err:    "invalid operation: <nil> >= int (1:53)",
				Operands: []*Condition{
					{Source: "customer.orders_count > 1", Value: true},
					{Source: "event.properties.score >= 9", Err: "invalid operation: <nil> >= int (1:24)"},
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			when := tt.when
			if when == "" {
				when = "true"
			}
			r := parse(t, when)
			if tt.when == "" {
				r.When = "" // as parsed from a rule without when:
			}
			got, err := r.Explain(in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			if tt.want.Err == "" {
				ok, err := r.Match(in)
				require.NoError(t, err)
				require.Equal(t, ok, got.Value, "Explain agrees with Match")
			}
		})
	}
}
