package ingest_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/ciclohq/ciclo/ingest"
)

// batchBody is a batch of n order events like the batch API's benchmark sends.
func batchBody(n int) []byte {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"customer_id":"c-%d","type":"order_placed","idempotency_key":"order-%d","email":"c%d@example.com","name":"Ana María","properties":{"total":42.5,"items":[{"sku":"a-1","qty":1},{"sku":"b-2","qty":2}],"note":"José"}}`, i, i, i)
	}
	b.WriteString("]")
	return []byte(b.String())
}

// BenchmarkCheckJSONText compares the raw-text check with the JSON decoding
// it follows, on a batch of 1,000 events.
func BenchmarkCheckJSONText(b *testing.B) {
	body := batchBody(1000)
	b.Run("Check", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := ingest.CheckJSONText(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var v []map[string]any
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPayloadHash hashes one decoded order event.
func BenchmarkPayloadHash(b *testing.B) {
	var v []map[string]any
	if err := json.Unmarshal(batchBody(1), &v); err != nil {
		b.Fatal(err)
	}
	props := v[0]["properties"]
	for b.Loop() {
		ingest.PayloadHash("c-1", "order_placed", "order-1", "", "c1@example.com", "Ana María", "", props, nil)
	}
}
