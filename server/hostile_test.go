package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/server"
)

// writtenTables are the tables ingestion and the points API write.
var writtenTables = []string{"customers", "events", "suppressions", "points_entries", "points_operations", "coupons"}

// rowCounts counts the rows of writtenTables and the evaluate jobs.
func rowCounts(t *testing.T, b *appBundle) map[string]int {
	t.Helper()
	n := map[string]int{"evaluate jobs": b.db.Count(t, "river_job", "kind = 'ciclo.evaluate'")}
	for _, table := range writtenTables {
		n[table] = b.db.Count(t, table, "")
	}
	return n
}

// requireNothingWritten asserts that the refused requests left no row
// behind on a fresh schema.
func requireNothingWritten(t *testing.T, b *appBundle, name string) {
	t.Helper()
	for table, n := range rowCounts(t, b) {
		require.Zero(t, n, "%s: rows in %s", name, table)
	}
}

// postAPI posts body to path with the API token.
func postAPI(t *testing.T, b *appBundle, path, body string) (*http.Response, string) {
	t.Helper()
	return do(t, newRequest(t, http.MethodPost, b.url+path, body,
		"Authorization", "Bearer "+apiToken, "Content-Type", "application/json"))
}

// TestHostileBodies sends bodies built to break the decoder or the
// database: each is answered 4xx with a message naming the problem, and
// nothing is written.
func TestHostileBodies(t *testing.T) {
	t.Parallel()
	b := startApp(t, nil)
	ev := func(fields string) string { return `{"customer_id":"c-1","type":"signed_up",` + fields + `}` }
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	batch := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"customer_id":"c-%d","type":"signed_up"}`, i)
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	tests := []struct {
		name       string
		path       string // default /v1/events
		body       string
		wantStatus int
		wantMsg    []string
	}{
		// Nesting: encoding/json stops at depth 10000 before the stack grows.
		{name: "Nesting100kArrays", body: ev(`"properties":{"a":` + deep(100_000) + `}`), wantStatus: 400, wantMsg: []string{"malformed JSON", "exceeded max depth"}},
		{name: "Nesting100kObjects", body: ev(`"properties":` + strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000)), wantStatus: 400, wantMsg: []string{"exceeded max depth"}},
		{name: "Nesting100kBare", body: deep(100_000), wantStatus: 400, wantMsg: []string{"malformed JSON", "exceeded max depth"}},
		{name: "Nesting100kInAttributes", body: ev(`"attributes":{"a":` + deep(100_000) + `}`), wantStatus: 400, wantMsg: []string{"exceeded max depth"}},
		{name: "NestingSuppression", path: "/v1/suppressions", body: `{"email":"a@example.com","detail":` + deep(100_000) + `}`, wantStatus: 413, wantMsg: []string{"larger than 4096 bytes"}},
		{name: "NestingPoints", path: "/v1/customers/c-1/points/adjust", body: `{"points":1,"reason":` + deep(100_000) + `}`, wantStatus: 413, wantMsg: []string{"larger than 4096 bytes"}},
		{name: "NestingPointsSmall", path: "/v1/customers/c-1/points/adjust", body: `{"points":1,"reason":` + deep(2000) + `}`, wantStatus: 400, wantMsg: []string{`"field":"reason"`}},

		// Numbers out of range.
		{name: "PropertyOverFloat64", body: ev(`"properties":{"total":1e309}`), wantStatus: 400, wantMsg: []string{`"field":"properties"`, "number 1e309 is out of range"}},
		{name: "PropertyHugeInteger", body: ev(`"properties":{"n":` + strings.Repeat("9", 400) + `}`), wantStatus: 400, wantMsg: []string{`"field":"properties"`, "out of range"}},
		{name: "AttributeOverFloat64", body: ev(`"attributes":{"ltv":-1e400}`), wantStatus: 400, wantMsg: []string{`"field":"attributes"`, "number -1e400 is out of range"}},
		{name: "TotalOverLimit", body: `{"customer_id":"c-1","type":"order_placed","properties":{"total":1e300}}`, wantStatus: 422, wantMsg: []string{"properties.total", "must be a number from 0 to"}},
		{name: "TotalNegative", body: `{"customer_id":"c-1","type":"order_placed","properties":{"total":-5}}`, wantStatus: 422, wantMsg: []string{"properties.total"}},
		{name: "TimeYear10000", body: ev(`"occurred_at":"10000-01-01T00:00:00Z"`), wantStatus: 400, wantMsg: []string{`"field":"occurred_at"`, "not an RFC 3339 time"}},
		{name: "NumberAsCustomerID", body: `{"customer_id":1e999,"type":"signed_up"}`, wantStatus: 400, wantMsg: []string{`"field":"customer_id"`}},
		{name: "PointsOverInt64", path: "/v1/customers/c-1/points/adjust", body: `{"points":99999999999999999999,"reason":"x","idempotency_key":"k"}`, wantStatus: 400, wantMsg: []string{`"field":"points"`, "whole number"}},
		{name: "PointsOverLimit", path: "/v1/customers/c-1/points/adjust", body: `{"points":9000000000000000000,"reason":"x","idempotency_key":"k"}`, wantStatus: 400, wantMsg: []string{`"field":"points"`, "over the limit"}},
		{name: "PointsFraction", path: "/v1/customers/c-1/points/redeem", body: `{"points":1.5,"idempotency_key":"k"}`, wantStatus: 400, wantMsg: []string{`"field":"points"`, "whole number", "1.5"}},

		// Batches.
		{name: "BatchOverTheLimit", body: batch(server.MaxBatchDefault + 1), wantStatus: 400, wantMsg: []string{"batch of 1001 events is over the limit of 1000"}},
		{name: "BatchOneBadItemLast", body: batch(999)[:len(batch(999))-1] + `,{"customer_id":"c-x","type":"Bad Type"}]`, wantStatus: 422, wantMsg: []string{`"field":"[999].type"`}},
		{name: "BatchOneNullItem", body: `[{"customer_id":"c-1","type":"a"},null]`, wantStatus: 400, wantMsg: []string{"[1]: event is null"}},
		{name: "BatchOneNulItem", body: `[{"customer_id":"c-1","type":"a"},{"customer_id":"c-2","type":"a","name":"\u0000"}]`, wantStatus: 400, wantMsg: []string{`"field":"[1].name"`, "NUL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/v1/events"
			}
			resp, body := postAPI(t, b, path, tt.body)
			require.Equal(t, tt.wantStatus, resp.StatusCode, body)
			for _, want := range tt.wantMsg {
				require.Contains(t, body, want)
			}
			requireNothingWritten(t, b, tt.name)
		})
	}
}

// TestHostileStrings puts a NUL, invalid UTF-8 and a lone surrogate in
// every string field of every JSON body and in every path parameter: each
// is a 400 naming the field, never a database error, and nothing is
// written. (Events' contact fields have more cases in internal/app.)
func TestHostileStrings(t *testing.T) {
	t.Parallel()
	b := startApp(t, nil)
	// The points routes need a customer: c-1 exists, the rest is counted.
	resp, out := postAPI(t, b, "/v1/events", `{"customer_id":"c-1","type":"signed_up"}`)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, out)
	before := rowCounts(t, b)
	requireUnchanged := func(t *testing.T, name string) {
		t.Helper()
		require.Equal(t, before, rowCounts(t, b), "%s wrote rows", name)
	}
	bad := map[string]string{"NUL": `\u0000`, "InvalidUTF8": "\xff", "LoneSurrogate": `\ud800`}
	type body struct {
		path   string
		fields map[string]string // field → JSON template with %s for the string
		tmpl   string            // the body, with {field} replaced by the field's JSON
	}
	bodies := []body{
		{path: "/v1/events", tmpl: `{"customer_id":{customer_id},"type":{type},"idempotency_key":{idempotency_key},"email":{email},"name":{name},"timezone":{timezone},"occurred_at":{occurred_at},"properties":{"p":{properties.p}},"attributes":{"a":{attributes.a}}}`,
			fields: map[string]string{"customer_id": "c-1", "type": "signed_up", "idempotency_key": "k-1", "email": "ana@example.com", "name": "Ana",
				"timezone": "Europe/Madrid", "occurred_at": "2026-01-01T00:00:00Z", "properties.p": "x", "attributes.a": "y"}},
		{path: "/v1/suppressions", tmpl: `{"email":{email},"reason":{reason},"detail":{detail}}`,
			fields: map[string]string{"email": "ana@example.com", "reason": "unsubscribed", "detail": "d"}},
		{path: "/v1/customers/c-1/points/adjust", tmpl: `{"points":5,"reason":{reason},"idempotency_key":{idempotency_key}}`,
			fields: map[string]string{"reason": "goodwill", "idempotency_key": "k-1"}},
		{path: "/v1/customers/c-1/points/redeem", tmpl: `{"points":5,"order_id":{order_id},"idempotency_key":{idempotency_key}}`,
			fields: map[string]string{"order_id": "o-1", "idempotency_key": "k-1"}},
	}
	for _, bd := range bodies {
		for field := range bd.fields {
			for kind, s := range bad {
				name := strings.Trim(bd.path, "/") + "/" + field + "/" + kind
				t.Run(name, func(t *testing.T) {
					doc := bd.tmpl
					for f, v := range bd.fields {
						if f == field {
							v = v[:1] + s + v[1:]
						}
						doc = strings.Replace(doc, "{"+f+"}", `"`+v+`"`, 1)
					}
					resp, body := postAPI(t, b, bd.path, doc)
					require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", doc, body)
					require.Contains(t, body, `"field":"`+field+`"`)
					requireUnchanged(t, name)
				})
			}
		}
	}

	// Path parameters: customer ids, rule names and addresses.
	paths := []struct{ method, path string }{
		{http.MethodGet, "/v1/customers/%s"},
		{http.MethodGet, "/v1/customers/%s/coupons"},
		{http.MethodDelete, "/v1/customers/%s"},
		{http.MethodGet, "/v1/customers/%s/points"},
		{http.MethodPost, "/v1/customers/%s/points/adjust"},
		{http.MethodPost, "/v1/customers/%s/points/redeem"},
		{http.MethodGet, "/v1/suppressions/%s"},
		{http.MethodDelete, "/v1/suppressions/%s"},
		{http.MethodPost, "/v1/rules/%s/run"},
	}
	for _, p := range paths {
		for kind, s := range map[string]string{"NUL": "c%00", "InvalidUTF8": "c%FF"} {
			t.Run(p.method+p.path+"/"+kind, func(t *testing.T) {
				body := ""
				if strings.Contains(p.path, "points") && p.method == http.MethodPost {
					body = `{"points":5,"reason":"r","idempotency_key":"k"}`
				}
				resp, out := do(t, newRequest(t, p.method, b.url+fmt.Sprintf(p.path, s), body,
					"Authorization", "Bearer "+apiToken, "Content-Type", "application/json"))
				require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound}, resp.StatusCode, out)
				require.NotContains(t, out, "request_id", "a database error")
				requireUnchanged(t, p.path)
			})
		}
	}
}

// heapSampler records the highest HeapInuse seen while it runs.
type heapSampler struct {
	base, peak atomic.Uint64
	stop       chan struct{}
	done       chan struct{}
}

func sampleHeap() *heapSampler {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	h.base.Store(m.HeapInuse)
	h.peak.Store(m.HeapInuse)
	go func() {
		defer close(h.done)
		for {
			select {
			case <-h.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > h.peak.Load() {
				h.peak.Store(m.HeapInuse)
			}
		}
	}()
	return h
}

// growth stops the sampler and returns the peak over the base, in bytes.
func (h *heapSampler) growth() int64 {
	close(h.stop)
	<-h.done
	return int64(h.peak.Load()) - int64(h.base.Load())
}

// TestStreamedHugeBody streams 100 MB at the events API, chunked (no
// Content-Length) and with an honest Content-Length: the server stops
// reading at the 1 MiB limit and answers 413 while the client is still
// sending, so the client gets to write a few MB at most and the process's
// heap does not grow by anything like 100 MB. Not parallel: the heap is
// the whole test binary's.
func TestStreamedHugeBody(t *testing.T) {
	b := startApp(t, func(c *app.Config) {
		c.HTTP = server.HTTPConfig{ReadTimeout: time.Minute, WriteTimeout: time.Minute}
	})
	const total = 100 << 20
	tests := []struct {
		name    string
		chunked bool
	}{
		{"Chunked", true},
		{"ContentLength", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", b.addr)
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(time.Minute)))
			framing := "Transfer-Encoding: chunked"
			if !tt.chunked {
				framing = fmt.Sprintf("Content-Length: %d", total)
			}
			_, err = io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+apiToken+
				"\r\nContent-Type: application/json\r\n"+framing+"\r\n\r\n")
			require.NoError(t, err)

			heap := sampleHeap()
			// The body is one open JSON string that never ends.
			var written atomic.Int64
			writeDone := make(chan error, 1)
			go func() {
				chunk := []byte(strings.Repeat("x", 64<<10))
				head := []byte(`{"customer_id":"c-1","type":"signed_up","name":"`)
				for n := 0; n < total; {
					p := chunk
					if n == 0 {
						p = append(head, chunk[len(head):]...)
					}
					if tt.chunked {
						if _, err := fmt.Fprintf(c, "%x\r\n", len(p)); err != nil {
							writeDone <- err
							return
						}
					}
					m, err := c.Write(p)
					written.Add(int64(m))
					n += m
					if err != nil {
						writeDone <- err
						return
					}
					if tt.chunked {
						if _, err := io.WriteString(c, "\r\n"); err != nil {
							writeDone <- err
							return
						}
					}
				}
				writeDone <- nil
			}()

			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			out, _ := io.ReadAll(resp.Body)
			atReply := written.Load()
			_ = c.Close()
			<-writeDone
			grew := heap.growth()
			t.Logf("%s: answered %d after the client wrote %.1f MB; heap grew by %.1f MB", tt.name, resp.StatusCode,
				float64(atReply)/(1<<20), float64(grew)/(1<<20))
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(out))
			require.Contains(t, string(out), "larger than 1048576 bytes")
			require.Less(t, atReply, int64(16<<20), "the server read on past the limit")
			require.Less(t, grew, int64(24<<20), "the server buffered the body")
			requireNothingWritten(t, b, tt.name)
		})
	}
}

// TestSlowHeaderClients: 200 clients that send their headers one byte
// every 200 ms are all disconnected at the read-header timeout, a normal
// client is answered while they hang on, and the server then serves as
// before. The read timeout is set far longer, so the read-header timeout
// alone must close them; with the cap of 250 connections, the slow clients
// cannot take every slot for longer than that timeout.
func TestSlowHeaderClients(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	b := startApp(t, func(c *app.Config) {
		c.HTTP = server.HTTPConfig{ReadHeaderTimeout: timeout, ReadTimeout: 8 * timeout, MaxConnections: 250}
	})
	const slow = 200
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed []time.Duration
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	for range slow {
		c, err := net.Dial("tcp", b.addr)
		require.NoError(t, err)
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + strings.Repeat("p", 200) + "\r\n\r\n"
			go func() {
				for i := 0; i < len(req) && ctx.Err() == nil; i++ {
					if _, err := c.Write([]byte{req[i]}); err != nil {
						return
					}
					time.Sleep(200 * time.Millisecond)
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(10 * timeout))
			_, err := io.Copy(io.Discard, c) // until the server closes it
			mu.Lock()
			defer mu.Unlock()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				closed = append(closed, -1)
				return
			}
			closed = append(closed, time.Since(start))
		}()
	}

	// While they trickle, a normal client is served at once.
	time.Sleep(timeout / 2)
	t0 := time.Now()
	resp, body := do(t, newRequest(t, http.MethodPost, b.url+"/v1/events", `{"customer_id":"c-ok","type":"signed_up"}`,
		"Authorization", "Bearer "+apiToken, "Content-Type", "application/json"))
	require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	require.Less(t, time.Since(t0), timeout, "the normal client waited behind the slow ones")

	wg.Wait()
	var slowest time.Duration
	for _, d := range closed {
		require.NotEqual(t, time.Duration(-1), d, "a slow client was still connected after %s", 10*timeout)
		slowest = max(slowest, d)
	}
	t.Logf("%d slow-header clients closed, the last after %s (read-header timeout %s)", len(closed), slowest, timeout)
	require.Len(t, closed, slow)
	require.Less(t, slowest, 4*timeout, "closed at the read-header timeout, not the read timeout")

	resp, body = do(t, newRequest(t, http.MethodGet, b.url+"/healthz", ""))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, 1, b.db.Count(t, "events", ""), "only the normal client's event")
}
