package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ciclohq/ciclo/ingest"
)

// FuzzDecodeEvents feeds arbitrary bodies to the events decoder and
// validation: they never panic, and an event they accept is one the
// database can store (valid UTF-8 without NUL in its strings, a customer
// id, a type, JSON-encodable properties).
func FuzzDecodeEvents(f *testing.F) {
	for _, seed := range []string{
		`{"customer_id":"c-1","type":"order_placed","properties":{"total":42.5}}`,
		`[{"customer_id":"c-1","type":"signed_up","email":"ana@example.com"},{"customer_id":"c-2","type":"x"}]`,
		`{"customer_id":"c-1","type":"order_placed","idempotency_key":"k","occurred_at":"2026-01-01T00:00:00Z","properties":{"total":1e309}}`,
		`{"customer_id":"c\u0000","type":"t"}`,
		"{\"customer_id\":\"\xff\",\"type\":\"t\"}",
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
		`{"customer_id":"c-1","type":"t","attributes":{"a":{"b":[1,2,{"c":null}]}}}`,
		``, `[]`, `null`, `{}`,
	} {
		f.Add([]byte(seed))
	}
	s := &Server{cfg: Config{MaxBodyBytes: 64 << 10, Now: time.Now}, ingest: ingest.NewChecker([]string{"order_placed"})}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		reqs, _, err := s.decodeEvents(httptest.NewRecorder(), r)
		if err != nil {
			return
		}
		for _, e := range reqs {
			ne, err := s.ingest.Check(e, now)
			if err != nil {
				continue
			}
			for _, str := range []string{ne.CustomerID, ne.Type, ne.IdempotencyKey, ne.Email, ne.Name, ne.Timezone} {
				if !utf8.ValidString(str) || bytes.IndexByte([]byte(str), 0) >= 0 {
					t.Fatalf("accepted a string Postgres cannot store: %q", str)
				}
			}
			if ne.CustomerID == "" || ne.Type == "" {
				t.Fatalf("accepted an event without customer or type: %+v", ne)
			}
			if _, err := json.Marshal(ne.Properties); err != nil {
				t.Fatalf("accepted properties that do not encode: %v", err)
			}
			if _, err := json.Marshal(ne.Attributes); err != nil {
				t.Fatalf("accepted attributes that do not encode: %v", err)
			}
		}
	})
}
