package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// postTo posts body to path with the API token.
func postTo(t testing.TB, url, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// ingestJobs selects the jobs ingestion writes (evaluations); the periodic
// jobs the leader enqueues on its own schedule (sweeps, expiries) are not
// the request's doing and may land at any moment.
const ingestJobs = "kind = 'ciclo.evaluate'"

// requireNothingStored asserts that no request left a row behind.
func requireNothingStored(t *testing.T, b *testBundle, name string) {
	t.Helper()
	for _, table := range []string{"customers", "events", "coupons", "suppressions"} {
		require.Equal(t, 0, b.db.Count(t, table, ""), "%s: rows in %s", name, table)
	}
	require.Equal(t, 0, b.db.Count(t, "river_job", ingestJobs), "%s: jobs", name)
}

func TestIngestChecks(t *testing.T) {
	t.Parallel()

	// Items 5, 7, 8 and 9 of issue 11: text ciclo cannot store or mail as sent
	// is refused with a 400 naming the field, and nothing is written.
	t.Run("RefusesUnstorableText", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := func(fields string) string { return `{"customer_id":"c-1","type":"signed_up",` + fields + `}` }
		tests := []struct {
			name    string
			path    string // default /v1/events
			body    string
			wantMsg []string
		}{
			// Control characters in contact fields (item 5).
			{name: "NameLineBreak", body: ev(`"name":"Ana\nBcc: all@example.com"`), wantMsg: []string{`"field":"name"`, "control character"}},
			{name: "NameCarriageReturn", body: ev(`"name":"Ana\r"`), wantMsg: []string{`"field":"name"`, "U+000D"}},
			{name: "NameTab", body: ev(`"name":"Ana\tB"`), wantMsg: []string{`"field":"name"`}},
			{name: "NameDEL", body: ev(`"name":"Ana\u007f"`), wantMsg: []string{`"field":"name"`}},
			{name: "NameC1", body: ev(`"name":"Ana\u0085"`), wantMsg: []string{`"field":"name"`}},
			{name: "NameLineSeparator", body: ev(`"name":"Ana\u2028B"`), wantMsg: []string{`"field":"name"`}},
			{name: "EmailLineBreak", body: ev(`"email":"ana@example.com\r\nBcc: all@example.com"`), wantMsg: []string{`"field":"email"`, "control character"}},
			{name: "EmailQuotedLineBreak", body: ev(`"email":"\"a\nb\"@example.com"`), wantMsg: []string{`"field":"email"`}},
			{name: "CustomerIDLineBreak", body: `{"customer_id":"c-1\n","type":"signed_up"}`, wantMsg: []string{`"field":"customer_id"`}},
			{name: "TimezoneLineBreak", body: ev(`"timezone":"Europe/Madrid\n"`), wantMsg: []string{`"field":"timezone"`}},
			{name: "NameInBatch", body: `[` + ev(`"name":"Ana"`) + `,` + ev(`"name":"Bo\nB"`) + `]`, wantMsg: []string{`"field":"[1].name"`, "[1].name"}},

			// NUL anywhere (item 7).
			{name: "NulInName", body: ev(`"name":"A\u0000"`), wantMsg: []string{`"field":"name"`, "NUL"}},
			{name: "NulInCustomerID", body: `{"customer_id":"c\u00001","type":"signed_up"}`, wantMsg: []string{`"field":"customer_id"`, "NUL"}},
			{name: "NulInType", body: `{"customer_id":"c-1","type":"a\u0000"}`, wantMsg: []string{`"field":"type"`, "NUL"}},
			{name: "NulInKey", body: ev(`"idempotency_key":"k\u0000"`), wantMsg: []string{`"field":"idempotency_key"`, "NUL"}},
			{name: "NulInProperty", body: ev(`"properties":{"note":"x\u0000y"}`), wantMsg: []string{`"field":"properties.note"`, "NUL"}},
			{name: "NulNested", body: ev(`"properties":{"items":[{"sku":"a"},{"sku":"b\u0000"}]}`), wantMsg: []string{`"field":"properties.items[1].sku"`}},
			{name: "NulInPropertyName", body: ev(`"properties":{"a\u0000b":1}`), wantMsg: []string{`properties[\"a\\u0000b\"]`, "NUL", "name"}},
			{name: "NulInAttribute", body: ev(`"attributes":{"tier":"\u0000"}`), wantMsg: []string{`"field":"attributes.tier"`}},
			{name: "NulInBatch", body: `[` + ev(`"name":"Ana"`) + `,` + ev(`"properties":{"n":"\u0000"}`) + `]`, wantMsg: []string{`"field":"[1].properties.n"`}},

			// Invalid UTF-8 and lone surrogates (item 8).
			{name: "InvalidUTF8CustomerID", body: "{\"customer_id\":\"coll-\xff\",\"type\":\"signed_up\"}", wantMsg: []string{`"field":"customer_id"`, "UTF-8", "0xff"}},
			{name: "InvalidUTF8Name", body: ev("\"name\":\"Ana \xc3\"") /* truncated sequence */, wantMsg: []string{`"field":"name"`, "UTF-8"}},
			{name: "EncodedSurrogate", body: ev("\"name\":\"\xed\xa0\x80\""), wantMsg: []string{`"field":"name"`, "UTF-8"}},
			{name: "InvalidUTF8Property", body: ev("\"properties\":{\"p\":[\"ok\",\"\xfe\"]}"), wantMsg: []string{`"field":"properties.p[1]"`, "UTF-8"}},
			{name: "InvalidUTF8PropertyName", body: ev("\"properties\":{\"\xfe\":1}"), wantMsg: []string{`"field":"properties`, "UTF-8"}},
			{name: "LoneHighSurrogate", body: `{"customer_id":"coll-\ud800","type":"signed_up"}`, wantMsg: []string{`"field":"customer_id"`, `\\ud800`, "surrogate"}},
			{name: "LoneLowSurrogate", body: ev(`"name":"\udc00"`), wantMsg: []string{`"field":"name"`, "surrogate"}},
			{name: "HighThenNotLow", body: ev(`"name":"\ud83d\u0041"`), wantMsg: []string{`"field":"name"`, "surrogate"}},
			{name: "HighAtEnd", body: ev(`"properties":{"x":"a\uD83D"}`), wantMsg: []string{`"field":"properties.x"`, "surrogate"}},

			// Bounds (item 9).
			{name: "NameTooLong", body: ev(`"name":"` + strings.Repeat("é", 201) + `"`), wantMsg: []string{`"field":"name"`, "200 characters", "201"}},
			{name: "EmailTooLong", body: ev(`"email":"` + strings.Repeat("a", 60) + "@" + strings.Repeat("b", 190) + `.com"`), wantMsg: []string{`"field":"email"`, "254"}},
			{name: "EmailLocalPartTooLong", body: ev(`"email":"` + strings.Repeat("a", 65) + `@example.com"`), wantMsg: []string{`"field":"email"`, "64"}},
			{name: "CustomerIDTooLong", body: `{"customer_id":"` + strings.Repeat("c", 256) + `","type":"signed_up"}`, wantMsg: []string{`"field":"customer_id"`, "255"}},
			{name: "KeyTooLong", body: ev(`"idempotency_key":"` + strings.Repeat("k", 256) + `"`), wantMsg: []string{`"field":"idempotency_key"`, "255"}},
			{name: "TimezoneTooLong", body: ev(`"timezone":"` + strings.Repeat("Z", 65) + `"`), wantMsg: []string{`"field":"timezone"`, "64"}},
			{name: "TooLongInBatch", body: `[` + ev(`"name":"Ana"`) + `,` + ev(`"name":"`+strings.Repeat("n", 201)+`"`) + `]`, wantMsg: []string{`"field":"[1].name"`}},

			// The suppressions API applies the same checks (item 7).
			{name: "SuppressionNulInEmail", path: "/v1/suppressions", body: `{"email":"bo@example.com\u0000"}`, wantMsg: []string{`"field":"email"`, "NUL"}},
			{name: "SuppressionNulInDetail", path: "/v1/suppressions", body: `{"email":"bo@example.com","detail":"x\u0000"}`, wantMsg: []string{`"field":"detail"`, "NUL"}},
			{name: "SuppressionInvalidUTF8", path: "/v1/suppressions", body: "{\"email\":\"b\xffo@example.com\"}", wantMsg: []string{`"field":"email"`, "UTF-8"}},
			{name: "SuppressionLoneSurrogate", path: "/v1/suppressions", body: `{"email":"bo@example.com","detail":"\ud800"}`, wantMsg: []string{`"field":"detail"`, "surrogate"}},
			{name: "SuppressionEmailLineBreak", path: "/v1/suppressions", body: `{"email":"bo@example.com\n"}`, wantMsg: []string{`"field":"email"`, "control character"}},
			{name: "SuppressionEmailTooLong", path: "/v1/suppressions", body: `{"email":"` + strings.Repeat("a", 60) + "@" + strings.Repeat("b", 190) + `.com"}`, wantMsg: []string{`"field":"email"`, "254"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				path := tt.path
				if path == "" {
					path = "/v1/events"
				}
				status, body := postTo(t, b.url, path, tt.body)
				require.Equal(t, http.StatusBadRequest, status, body)
				for _, want := range tt.wantMsg {
					require.Contains(t, body, want)
				}
				requireNothingStored(t, b, tt.name)
			})
		}
	})

	// Looking a suppression up or lifting it by an address the database
	// cannot hold answers 400, not 503 (item 7).
	t.Run("SuppressionPathChecks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			for _, path := range []string{"/v1/suppressions/bo%00@example.com", "/v1/suppressions/b%FFo@example.com"} {
				req, err := http.NewRequest(method, b.url+path, nil)
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s %s: %s", method, path, body)
				require.Contains(t, string(body), `"field":"email"`)
			}
		}
	})

	// Distinct identifiers are never rewritten into one (item 8).
	t.Run("DistinctIDsNeverMerge", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, id := range []string{"coll-\xff", "coll-\xfe", `coll-\udcff`, `coll-\ufffd`} {
			status, body := post(t, b.url, token, `{"customer_id":"`+id+`","type":"signed_up","email":"x@example.com"}`)
			if id == `coll-\ufffd` { // a real U+FFFD is a character like any other
				require.Equal(t, http.StatusAccepted, status, body)
				continue
			}
			require.Equal(t, http.StatusBadRequest, status, body)
		}
		require.Equal(t, 1, b.db.Count(t, "customers", ""))
		require.Equal(t, 1, b.db.Count(t, "customers", "id = $1", "coll-\uFFFD"))
	})

	// Text at the limits, and characters that look like the refused ones, are accepted.
	t.Run("AcceptsValidText", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		name := strings.Repeat("é", 199) + "😀" // 200 characters, 402 bytes
		email := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com"
		require.Len(t, email, 254)
		id := strings.Repeat("c", 255)
		status, body := post(t, b.url, token, `{"customer_id":"`+id+`","type":"signed_up","name":"`+name+`","email":"`+email+`",
			"timezone":"America/Argentina/ComodRivadavia",
			"properties":{"note":"line one\nline two\ttab","emoji":"\ud83d\ude00","zwj":"👩‍👩‍👧"}}`)
		require.Equal(t, http.StatusAccepted, status, body)
		var gotName, gotEmoji string
		require.NoError(t, b.db.Pool.QueryRow(context.Background(),
			`SELECT c.name, e.properties->>'emoji' FROM customers c JOIN events e ON e.customer_id = c.id WHERE c.id = $1`, id).Scan(&gotName, &gotEmoji))
		require.Equal(t, name, gotName)
		require.Equal(t, "😀", gotEmoji)
		status, body = postTo(t, b.url, "/v1/suppressions", `{"email":"bo@example.com","detail":"imported\nfrom the old list"}`)
		require.Equal(t, http.StatusCreated, status, body)
	})

	// Item 3: a key reused with a different payload answers 422 naming the
	// key, and stores nothing; the same payload again is a duplicate.
	t.Run("IdempotencyKeyReuse", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := `{"customer_id":"c-1","type":"order_placed","idempotency_key":"order-1","occurred_at":"2025-03-01T10:00:00Z",
			"email":"ana@example.com","name":"Ana","properties":{"total":42.5,"items":[{"sku":"a","qty":1}]}}`
		status, body := post(t, b.url, token, first)
		require.Equal(t, http.StatusAccepted, status, body)
		waitJobs(t, b.db)
		counts := func() [4]int {
			return [4]int{b.db.Count(t, "events", ""), b.db.Count(t, "customers", ""), b.db.Count(t, "coupons", ""), b.db.Count(t, "river_job", ingestJobs)}
		}
		before := counts()

		same := []struct{ name, body string }{
			{"Identical", first},
			{"KeysReordered", `{"properties":{"items":[{"qty":1,"sku":"a"}],"total":42.50},"name":"Ana","email":"ana@example.com",
				"occurred_at":"2025-03-01T11:00:00+01:00","idempotency_key":"order-1","type":"order_placed","customer_id":"c-1"}`},
			{"InBatch", `[` + first + `]`},
		}
		for _, tt := range same {
			status, body := post(t, b.url, token, tt.body)
			require.Equal(t, http.StatusAccepted, status, "%s: %s", tt.name, body)
			require.Contains(t, body, `"duplicate":true`, tt.name)
		}

		conflicts := []struct {
			name, body, wantField string
		}{
			{"OtherTotal", strings.Replace(first, "42.5", "99", 1), "idempotency_key"},
			{"OtherType", strings.Replace(first, `"order_placed"`, `"refund_issued"`, 1), "idempotency_key"},
			{"OtherTime", strings.Replace(first, "10:00:00Z", "10:00:01Z", 1), "idempotency_key"},
			{"TimeLeftOut", strings.Replace(first, `"occurred_at":"2025-03-01T10:00:00Z",`, "", 1), "idempotency_key"},
			{"OtherName", strings.Replace(first, `"Ana"`, `"Ana B"`, 1), "idempotency_key"},
			{"ExtraAttribute", strings.Replace(first, `"name":"Ana",`, `"name":"Ana","attributes":{"vip":true},`, 1), "idempotency_key"},
			{"NestedChange", strings.Replace(first, `"qty":1`, `"qty":2`, 1), "idempotency_key"},
			{"OneInBatch", `[{"customer_id":"c-2","type":"signed_up","idempotency_key":"s-2"},` + strings.Replace(first, "42.5", "1", 1) + `]`, "[1].idempotency_key"},
			{"TwoInOneBatch", `[{"customer_id":"c-3","type":"signed_up","idempotency_key":"s-3"},{"customer_id":"c-3","type":"signed_up","idempotency_key":"s-3","name":"Other"}]`, "[1].idempotency_key"},
		}
		for _, tt := range conflicts {
			status, body := post(t, b.url, token, tt.body)
			require.Equal(t, http.StatusUnprocessableEntity, status, "%s: %s", tt.name, body)
			require.Contains(t, body, `"field":"`+tt.wantField+`"`, tt.name)
			require.Contains(t, body, `idempotency key \"`, tt.name)
			require.Contains(t, body, "different event", tt.name)
			require.Equal(t, before, counts(), "%s stored something", tt.name)
		}
		require.Equal(t, 1, b.db.Count(t, "customers", "id = 'c-1' AND name = 'Ana' AND total_spent_cents = 4250"))

		// Two events of one batch with one key: the message names both.
		status, body = post(t, b.url, token, `[{"customer_id":"c-4","type":"signed_up","idempotency_key":"s-4"},
			{"customer_id":"c-0","type":"signed_up"},
			{"customer_id":"c-4","type":"signed_up","idempotency_key":"s-4","name":"Other"}]`)
		require.Equal(t, http.StatusUnprocessableEntity, status, body)
		require.Contains(t, body, `"field":"[2].idempotency_key"`)
		require.Contains(t, body, "two different events of this batch ([0] and [2])")
		require.Equal(t, before, counts())
	})
}

// Item 4: a second redemption of a coupon answers 409 and changes nothing;
// codes match whatever their case.
func TestCouponRedeemedTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	status, body := post(t, b.url, token, `{"customer_id":"c-9","type":"order_placed","email":"eva@example.com","properties":{"total":20}}`)
	require.Equal(t, http.StatusAccepted, status, body)
	b.smtp.WaitMessages(t, 1, 15*time.Second)
	waitJobs(t, b.db)
	var code string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT code FROM coupons WHERE customer_id = 'c-9'`).Scan(&code))

	typed := " " + strings.ToLower(code) + " " // read aloud and typed
	redemption := `{"customer_id":"c-9","type":"coupon_redeemed","idempotency_key":"redeem-1","occurred_at":"2025-05-01T12:00:00Z","properties":{"code":"` + typed + `"}}`
	status, body = post(t, b.url, token, redemption)
	require.Equal(t, http.StatusAccepted, status, body)
	waitJobs(t, b.db)
	// A retry of the same redemption (same key, same payload) is a duplicate, not a conflict.
	status, body = post(t, b.url, token, redemption)
	require.Equal(t, http.StatusAccepted, status, body)
	require.Contains(t, body, `"duplicate":true`)
	var redeemed time.Time
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT redeemed_at FROM coupons WHERE code = $1`, code).Scan(&redeemed))
	require.True(t, redeemed.Equal(time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)), redeemed)
	events, jobs := b.db.Count(t, "events", ""), b.db.Count(t, "river_job", ingestJobs)

	tests := []struct{ name, body, wantField string }{
		{"SameCode", `{"customer_id":"c-9","type":"coupon_redeemed","properties":{"code":"` + code + `"}}`, "properties.code"},
		{"OtherCase", `{"customer_id":"c-9","type":"coupon_redeemed","properties":{"code":"` + strings.ToLower(code) + `"}}`, "properties.code"},
		{"InBatch", `[{"customer_id":"c-9","type":"page_viewed"},{"customer_id":"c-9","type":"coupon_redeemed","properties":{"code":"` + code + `"}}]`, "[1].properties.code"},
	}
	for _, tt := range tests {
		status, body := post(t, b.url, token, tt.body)
		require.Equal(t, http.StatusConflict, status, "%s: %s", tt.name, body)
		require.Contains(t, body, `"field":"`+tt.wantField+`"`, tt.name)
		require.Contains(t, body, "already redeemed at 2025-05-01T12:00:00Z", tt.name)
		require.Equal(t, events, b.db.Count(t, "events", ""), tt.name)
		require.Equal(t, jobs, b.db.Count(t, "river_job", ingestJobs), tt.name)
		require.Equal(t, 1, b.db.Count(t, "coupons", "code = $1 AND redeemed_at = $2", code, redeemed), tt.name)
	}

	// Redeeming twice in one batch: the batch is refused whole.
	_, err := b.db.Pool.Exec(context.Background(), `INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value)
		VALUES ('SECND-CODE2', 'c-9', 'first-order-bonus', 0, 'percent', 5)`)
	require.NoError(t, err)
	redeem := `{"customer_id":"c-9","type":"coupon_redeemed","properties":{"code":"secnd-code2"}}`
	status, body = post(t, b.url, token, `[`+redeem+`,`+redeem+`]`)
	require.Equal(t, http.StatusConflict, status, body)
	require.Contains(t, body, `"field":"[1].properties.code"`)
	require.Equal(t, events, b.db.Count(t, "events", ""))
	require.Equal(t, 0, b.db.Count(t, "coupons", "code = 'SECND-CODE2' AND redeemed_at IS NOT NULL"))
}
