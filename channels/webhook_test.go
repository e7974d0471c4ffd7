package channels_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/channels"
)

// verify checks a Standard Webhooks request independently of channels.Sign, straight from the
// spec: the key is the base64 part of a whsec_ secret, the signed content is
// "{id}.{timestamp}.{body}", and the header holds space-separated "v1,{base64 HMAC-SHA256}".
func verify(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", h.Get("webhook-id"), h.Get("webhook-timestamp"), body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestWebhook(t *testing.T) {
	t.Parallel()

	now := time.Unix(1_700_000_000, 0)

	type testBundle struct {
		srv   *httptest.Server
		hits  *atomic.Int32
		reqs  chan *http.Request
		bodys chan []byte
	}
	setup := func(t *testing.T, handler http.HandlerFunc, cfg *channels.WebhookConfig) (*channels.Webhook, *testBundle) {
		t.Helper()
		b := &testBundle{hits: new(atomic.Int32), reqs: make(chan *http.Request, 10), bodys: make(chan []byte, 10)}
		b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b.hits.Add(1)
			body, _ := io.ReadAll(r.Body)
			b.reqs <- r
			b.bodys <- body
			handler(w, r)
		}))
		t.Cleanup(b.srv.Close)
		if cfg == nil {
			cfg = &channels.WebhookConfig{AllowedHosts: []string{"127.0.0.1"}}
		}
		cfg.Now = func() time.Time { return now }
		wh := channels.NewWebhook(cfg)
		t.Cleanup(func() { require.NoError(t, wh.Close()) })
		return wh, b
	}
	msg := func(u string) *channels.Message {
		return &channels.Message{ID: "dlv-42", URL: u, Secret: testSecret, Body: []byte(`{"type":"stage_changed","customer":"c1"}`)}
	}

	t.Run("SignedPostVerifies", func(t *testing.T) {
		t.Parallel()
		wh, b := setup(t, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"ok":true}`)
		}, nil)
		require.Equal(t, "webhook", wh.Name())

		res, err := wh.Send(t.Context(), msg(b.srv.URL+"/hook"))
		require.NoError(t, err)
		require.Equal(t, channels.Result{ProviderID: "dlv-42", StatusCode: 200, Response: `{"ok":true}`}, res)

		r, body := <-b.reqs, <-b.bodys
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/hook", r.URL.Path)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.Equal(t, channels.WebhookUserAgentDefault, r.Header.Get("User-Agent"))
		require.Equal(t, "dlv-42", r.Header.Get("webhook-id"))
		require.Equal(t, strconv.FormatInt(now.Unix(), 10), r.Header.Get("webhook-timestamp"))
		require.Equal(t, msg("").Body, body)
		require.True(t, verify(testSecret, r.Header, body), "independent verifier accepts the signature")

		tampered := append([]byte(nil), body...)
		tampered[2] = 'X'
		require.False(t, verify(testSecret, r.Header, tampered))
		require.False(t, verify("whsec_"+base64.StdEncoding.EncodeToString([]byte("other")), r.Header, body))
	})

	t.Run("ResponseExcerptIsBounded", func(t *testing.T) {
		t.Parallel()
		wh, b := setup(t, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("é", 2000))
		}, nil)
		res, err := wh.Send(t.Context(), msg(b.srv.URL))
		require.NoError(t, err)
		require.LessOrEqual(t, len(res.Response), channels.ResponseExcerptMax)
		require.Equal(t, strings.Repeat("é", channels.ResponseExcerptMax/2), res.Response)
	})

	t.Run("StatusClassification", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name      string
			status    int
			wantErr   bool
			permanent bool
		}{
			{"OK", 200, false, false},
			{"Accepted", 202, false, false},
			{"NoContent", 204, false, false},
			{"BadRequest", 400, true, true},
			{"Unauthorized", 401, true, true},
			{"NotFound", 404, true, true},
			{"Gone", 410, true, true},
			{"RequestTimeout", 408, true, false},
			{"TooManyRequests", 429, true, false},
			{"InternalServerError", 500, true, false},
			{"BadGateway", 502, true, false},
			{"ServiceUnavailable", 503, true, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				wh, b := setup(t, func(w http.ResponseWriter, _ *http.Request) {
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, "reply "+strconv.Itoa(tt.status))
				}, nil)
				res, err := wh.Send(t.Context(), msg(b.srv.URL))
				require.Equal(t, tt.status, res.StatusCode)
				if tt.status != 204 {
					require.Equal(t, "reply "+strconv.Itoa(tt.status), res.Response)
				}
				if !tt.wantErr {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				require.Equal(t, tt.permanent, channels.IsPermanent(err))
				var se *channels.SendError
				require.ErrorAs(t, err, &se)
				require.Equal(t, tt.status, se.Code)
			})
		}
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		t.Parallel()
		target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
			t.Error("redirect was followed")
		}))
		t.Cleanup(target.Close)
		wh, b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
		}, nil)
		res, err := wh.Send(t.Context(), msg(b.srv.URL))
		require.True(t, channels.IsPermanent(err), "%v", err)
		require.Equal(t, http.StatusTemporaryRedirect, res.StatusCode)
		require.EqualValues(t, 1, b.hits.Load())
	})

	t.Run("PrivateTargetRefused", func(t *testing.T) {
		t.Parallel()
		wh, b := setup(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }, &channels.WebhookConfig{})
		_, err := wh.Send(t.Context(), msg(b.srv.URL))
		require.True(t, channels.IsPermanent(err), "%v", err)
		require.ErrorIs(t, err, channels.ErrTargetRefused)

		u, err := url.Parse(b.srv.URL)
		require.NoError(t, err)
		_, err = wh.Send(t.Context(), msg("http://localhost:"+u.Port()))
		require.ErrorIs(t, err, channels.ErrTargetRefused, "names resolving to loopback are refused too")
		require.Zero(t, b.hits.Load(), "refused before any request reaches the target")
	})

	t.Run("PrivateTargetAllowed", func(t *testing.T) {
		t.Parallel()
		for _, cfg := range []*channels.WebhookConfig{
			{AllowPrivate: true},
			{AllowedHosts: []string{"127.0.0.1"}},
			{AllowedHosts: []string{"placeholder"}}, // replaced below with host:port
		} {
			wh, b := setup(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }, cfg)
			if cfg.AllowedHosts != nil && cfg.AllowedHosts[0] == "placeholder" {
				u, err := url.Parse(b.srv.URL)
				require.NoError(t, err)
				wh = channels.NewWebhook(&channels.WebhookConfig{AllowedHosts: []string{u.Host}})
			}
			_, err := wh.Send(t.Context(), msg(b.srv.URL))
			require.NoError(t, err)
		}
	})

	t.Run("NetworkErrorIsTemporary", func(t *testing.T) {
		t.Parallel()
		wh, b := setup(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }, nil)
		u := b.srv.URL
		b.srv.Close()
		_, err := wh.Send(t.Context(), msg(u))
		require.Error(t, err)
		require.False(t, channels.IsPermanent(err))
	})

	t.Run("TimeoutIsTemporary", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		wh, b := setup(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}, &channels.WebhookConfig{AllowPrivate: true, Timeout: 100 * time.Millisecond})
		defer close(release)
		_, err := wh.Send(t.Context(), msg(b.srv.URL))
		require.Error(t, err)
		require.False(t, channels.IsPermanent(err))
	})

	t.Run("InvalidMessagesArePermanent", func(t *testing.T) {
		t.Parallel()
		wh, b := setup(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }, nil)
		tests := []struct {
			name   string
			modify func(m *channels.Message)
		}{
			{"NoSecret", func(m *channels.Message) { m.Secret = "" }},
			{"BadBase64Secret", func(m *channels.Message) { m.Secret = "whsec_!!!" }},
			{"FTPURL", func(m *channels.Message) { m.URL = "ftp://example.com/x" }},
			{"RelativeURL", func(m *channels.Message) { m.URL = "/hook" }},
			{"NoID", func(m *channels.Message) { m.ID = "" }},
			{"HeaderInjection", func(m *channels.Message) { m.Headers = map[string]string{"X-A": "1\r\nX-B: 2"} }},
		}
		for _, tt := range tests {
			m := msg(b.srv.URL)
			tt.modify(m)
			_, err := wh.Send(t.Context(), m)
			require.True(t, channels.IsPermanent(err), "%s: %v", tt.name, err)
			require.ErrorIs(t, err, channels.ErrInvalidMessage, tt.name)
		}
		require.Zero(t, b.hits.Load())
	})
}

func TestSign(t *testing.T) {
	t.Parallel()
	ts := time.Unix(1_614_265_330, 0)
	body := []byte(`{"test": 2432232314}`)
	tests := []struct {
		name   string
		secret string
		want   string
	}{
		// The Standard Webhooks specification's example.
		{"SpecExample", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, channels.Sign(tt.secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body))
		})
	}

	t.Run("RawSecret", func(t *testing.T) {
		t.Parallel()
		mac := hmac.New(sha256.New, []byte("plain-secret"))
		fmt.Fprintf(mac, "id.%d.%s", ts.Unix(), body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		require.Equal(t, want, channels.Sign("plain-secret", "id", ts, body))
	})
}
