package csvimport

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// readAll returns the good rows and the row errors of a file.
func readAll(t *testing.T, kind, file string) ([]any, []string) {
	t.Helper()
	r, err := NewReader(kind, strings.NewReader(file), Options{Now: now, Stages: []string{"reach", "conversion", "loyalty"}})
	require.NoError(t, err)
	var (
		rows []any
		errs []string
	)
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows, errs
		}
		var re *RowError
		if errors.As(err, &re) {
			errs = append(errs, re.Error())
			continue
		}
		require.NoError(t, err)
		rows = append(rows, row)
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		kind    string
		file    string
		wantErr string
	}{
		{name: "Empty", kind: KindCustomers, file: "", wantErr: "the file is empty"},
		{name: "MissingID", kind: KindCustomers, file: "email,name\n", wantErr: `missing column "id"`},
		{name: "MissingOrderColumn", kind: KindOrders, file: "customer_id,order_id,total,currency\n", wantErr: `missing column "ordered_at"`},
		{name: "UnknownOrderColumn", kind: KindOrders, file: "customer_id,order_id,total,currency,ordered_at,colour\n", wantErr: `unknown column "colour"`},
		{name: "Duplicate", kind: KindCustomers, file: "id,email,Email\n", wantErr: `column "email" appears twice`},
		{name: "Blank", kind: KindCustomers, file: "id,,email\n", wantErr: "column 2 has no name"},
		{name: "UnknownKind", kind: "products", file: "id\n", wantErr: "unknown import kind"},
		{name: "BOM", kind: KindCustomers, file: "\ufeffid,email\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewReader(tt.kind, strings.NewReader(tt.file), Options{Now: now})
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestCustomers(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	file := "id,email,name,timezone,created_at,stage,accepts_marketing,plan\n" +
		"c1,ana@example.com,Ana,Europe/Madrid,2024-03-01,conversion,yes,gold\n" +
		"c2,,,,,,,\n" +
		"c3,bob@example.com,Bob,,2024-03-01T10:00:00+01:00,,0,\n" +
		",x@example.com,,,,,,\n" + // line 5: no id
		"c5,not-an-email,,,,,,\n" +
		"c6,,,Mars/Olympus,,,,\n" +
		"c7,,,,yesterday,,,\n" +
		"c8,,,,,gold,,\n" +
		"c9,,,,,,maybe,\n" +
		"c10,,\"Line\nBreak\",,,,,\n" + // lines 11-12
		"c11,,,\n" +
		"c12,,,,2030-01-01,,,\n" +
		"c13,,\xff,,,,,\n" +
		"c14,,,Local,,,,\n" +
		"c15,,,,1999-12-31,,,\n" +
		"c\x7f16,,,,,,,\n"
	rows, errs := readAll(t, KindCustomers, file)
	require.Equal(t, []any{
		&Customer{Line: 2, ID: "c1", Email: "ana@example.com", Name: "Ana", Timezone: "Europe/Madrid",
			CreatedAt: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Stage: "conversion", AcceptsMarketing: &yes,
			Attributes: map[string]any{"plan": "gold"}},
		&Customer{Line: 3, ID: "c2", Attributes: map[string]any{}},
		&Customer{Line: 4, ID: "c3", Email: "bob@example.com", Name: "Bob",
			CreatedAt: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC), AcceptsMarketing: &no, Attributes: map[string]any{}},
	}, rows)
	require.Equal(t, []string{
		"line 5: id: required",
		`line 6: email: "not-an-email" is not a valid email address`,
		`line 7: timezone: "Mars/Olympus" is not an IANA time zone (e.g. Europe/Madrid)`,
		`line 8: created_at: "yesterday" is not a date (2024-03-01) or time (2024-03-01T10:00:00Z)`,
		`line 9: stage: "gold" is not a stage of the rules file; stages are: reach, conversion, loyalty`,
		`line 10: accepts_marketing: "maybe" is not a yes/no value (true, false, yes, no, 1, 0)`,
		"line 11: name: contains the control character U+000A at byte 4: contact fields are one line of printable text",
		"line 13: has 4 fields, the header has 8",
		"line 14: created_at: 2030-01-01T00:00:00Z is in the future (more than 24h0m0s ahead of the server's clock)",
		"line 15: name: is not valid UTF-8 (byte 0xff at byte 0): send text encoded as UTF-8",
		`line 16: timezone: "Local" is not an IANA time zone (e.g. Europe/Madrid)`,
		"line 17: created_at: 1999-12-31T00:00:00Z is before 2000-01-01: send the time it happened",
		"line 18: id: contains the control character U+007F at byte 1: contact fields are one line of printable text",
	}, errs)
}

func TestOrders(t *testing.T) {
	t.Parallel()
	file := "customer_id,order_id,total,currency,ordered_at,status\n" +
		"c1,o1,42.50,EUR,2024-05-01T10:00:00Z,completed\n" +
		"c1,o2,1200,JPY,2024-06-01,\n" +
		"c2,o3,10.00,USD,2024-06-02,Cancelled\n" +
		"c2,o4,10.005,USD,2024-06-02,\n" +
		"c2,o5,ten,USD,2024-06-02,\n" +
		"c2,o6,10,dollars,2024-06-02,\n" +
		"c2,,10,USD,2024-06-02,\n" +
		"c2,o7,-5,USD,2024-06-02,\n" +
		"c2,o8,5,USD,,\n" +
		"c2," + strings.Repeat("x", 250) + ",5,USD,2024-06-02,\n"
	rows, errs := readAll(t, KindOrders, file)
	require.Equal(t, []any{
		&Order{Line: 2, CustomerID: "c1", OrderID: "o1", TotalMinor: 4250, Currency: "EUR", OrderedAt: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), Status: "completed"},
		&Order{Line: 3, CustomerID: "c1", OrderID: "o2", TotalMinor: 1200, Currency: "JPY", OrderedAt: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)},
		&Order{Line: 4, CustomerID: "c2", OrderID: "o3", TotalMinor: 1000, Currency: "USD", OrderedAt: time.Date(2024, 6, 2, 0, 0, 0, 0, time.UTC), Status: "cancelled"},
	}, rows)
	require.Equal(t, []string{
		`line 5: total: invalid amount "10.005": USD has 2 decimals`,
		`line 6: total: invalid amount "ten": want a decimal number such as 19.90`,
		`line 7: currency: currency "DOLLARS" is not an ISO 4217 code such as EUR or USD`,
		"line 8: order_id: required",
		"line 9: total: is negative; import refunds with status refunded",
		"line 10: ordered_at: required",
		"line 11: order_id: is 263 bytes long, over the limit of 255 bytes",
	}, errs)
	o := rows[2].(*Order)
	require.False(t, o.Counted())
	require.Equal(t, "order_cancelled", o.EventType())
	require.True(t, rows[0].(*Order).Counted())
	require.Equal(t, "order_placed", rows[0].(*Order).EventType())
}
