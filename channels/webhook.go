package channels

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// WebhookTimeoutDefault bounds a whole webhook request, response body included.
	WebhookTimeoutDefault = 10 * time.Second
	// WebhookUserAgentDefault is the User-Agent webhooks are sent with.
	WebhookUserAgentDefault = "ciclo-webhook/1"
	// WebhookSecretPrefix marks a base64-encoded secret, as in Standard Webhooks.
	WebhookSecretPrefix = "whsec_"

	// webhookDrainMax is how much of a response body is read (then discarded) so the
	// connection can be reused.
	webhookDrainMax = 64 << 10
)

// WebhookConfig configures a Webhook channel.
type WebhookConfig struct {
	// Timeout bounds a whole request, reading the response included. Default
	// WebhookTimeoutDefault.
	Timeout time.Duration
	// AllowPrivate allows targets on loopback, private, link-local and other non-public
	// addresses. Default false: such targets are refused, so a rules file cannot be used to
	// reach internal services.
	AllowPrivate bool
	// AllowedHosts are targets always allowed, as a host ("127.0.0.1", "hooks.internal") or
	// host:port ("127.0.0.1:8080") of the URL. Default none.
	AllowedHosts []string
	// UserAgent is the User-Agent header. Default WebhookUserAgentDefault.
	UserAgent string
	// Now returns the current time, used for webhook-timestamp. Default time.Now.
	Now func() time.Time
}

// Webhook is a Channel that POSTs Message.Body as application/json to Message.URL, signed per
// Standard Webhooks (headers webhook-id, webhook-timestamp, webhook-signature; see Sign).
// A 2xx response is success. 408, 429, 5xx, network errors and timeouts are temporary
// *SendErrors; other statuses, redirects included (they are never followed), are permanent.
// Targets resolving to non-public addresses are refused unless allowed by the config; the
// check is made on the address actually dialed, so DNS rebinding cannot bypass it.
// Environment proxy settings are ignored for the same reason.
type Webhook struct {
	cfg     WebhookConfig
	allowed map[string]bool
	client  *http.Client
}

// NewWebhook returns a Webhook channel; zero fields of cfg take their defaults.
func NewWebhook(cfg *WebhookConfig) *Webhook {
	c := *cfg
	if c.Timeout <= 0 {
		c.Timeout = WebhookTimeoutDefault
	}
	if c.UserAgent == "" {
		c.UserAgent = WebhookUserAgentDefault
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	w := &Webhook{cfg: c, allowed: make(map[string]bool, len(c.AllowedHosts))}
	for _, h := range c.AllowedHosts {
		w.allowed[strings.ToLower(h)] = true
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           w.dialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   c.Timeout,
		ResponseHeaderTimeout: c.Timeout,
	}
	w.client = &http.Client{
		Transport: transport,
		Timeout:   c.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return w
}

// Name returns "webhook".
func (w *Webhook) Name() string { return WebhookName }

// Send POSTs m.Body to m.URL, signed with m.Secret. m.ID (required, the webhook-id) must stay
// the same across retries so receivers can deduplicate. m.Headers are sent as extra headers;
// they cannot replace the signature headers or Content-Type. An empty secret is refused:
// ciclo's webhooks are always signed.
func (w *Webhook) Send(ctx context.Context, m *Message) (Result, error) {
	u, err := url.Parse(m.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{}, invalid("webhook url %q: want an absolute http or https URL", m.URL)
	}
	if m.ID == "" || hasNewline(m.ID) {
		return Result{}, invalid("webhook id %q", m.ID)
	}
	if m.Secret == "" {
		return Result{}, invalid("webhook has no secret")
	}
	if _, err := DecodeSecret(m.Secret); err != nil {
		return Result{}, permanent(0, fmt.Errorf("%w: %w", ErrInvalidMessage, err))
	}

	ts := w.cfg.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(m.Body))
	if err != nil {
		return Result{}, invalid("webhook request: %v", err)
	}
	for name, value := range m.Headers {
		if !isHeaderName(name) || hasNewline(value) {
			return Result{}, invalid("header %q cannot be set", name)
		}
		req.Header.Set(name, value)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", w.cfg.UserAgent)
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(m.Secret, m.ID, ts, m.Body))

	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, ErrTargetRefused) {
			return Result{}, permanent(0, fmt.Errorf("webhook post: %w", err))
		}
		return Result{}, temporary(0, fmt.Errorf("webhook post: %w", err))
	}
	defer resp.Body.Close()

	// A body that breaks off does not change the status the endpoint answered with.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, ResponseExcerptMax))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookDrainMax))
	res := Result{ProviderID: m.ID, StatusCode: resp.StatusCode, Response: excerpt(head)}

	code := resp.StatusCode
	statusErr := fmt.Errorf("webhook post: %s", resp.Status)
	switch {
	case code >= 200 && code < 300:
		return res, nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return res, temporary(code, statusErr)
	default:
		return res, permanent(code, statusErr)
	}
}

// Close closes idle connections. Webhook holds no other resources; Send keeps working.
func (w *Webhook) Close() error {
	w.client.CloseIdleConnections()
	return nil
}

// dialContext dials addr, refusing non-public addresses unless the host is allowed.
func (w *Webhook) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: w.cfg.Timeout, KeepAlive: 30 * time.Second}
	host, _, _ := net.SplitHostPort(addr)
	if !w.cfg.AllowPrivate && !w.allowed[strings.ToLower(addr)] && !w.allowed[strings.ToLower(host)] {
		d.Control = refusePrivate
	}
	return d.DialContext(ctx, network, addr)
}

// refusePrivate is a net.Dialer Control function: it runs after name resolution, for the
// address about to be connected.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrTargetRefused, address)
	}
	if !isPublic(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrTargetRefused, ap.Addr())
	}
	return nil
}

// nonPublic are ranges not covered by netip.Addr's predicates.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: may embed a private IPv4 address
}

// isPublic reports whether a is a globally routable unicast address.
func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsMulticast() ||
		a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// DecodeSecret returns the HMAC key of a webhook secret: the base64-decoded rest of a secret
// that starts with WebhookSecretPrefix ("whsec_"), else the secret's raw bytes. It errors on
// a prefixed secret that is not valid base64.
func DecodeSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %s... is not valid base64", WebhookSecretPrefix)
	}
	return key, nil
}

// Sign returns the Standard Webhooks signature header value for a message:
// "v1," + base64(HMAC-SHA256(key, id + "." + unix seconds of ts + "." + body)), where key is
// DecodeSecret(secret). A "whsec_" secret that is not valid base64 is used as raw bytes
// (Webhook.Send refuses such secrets before signing).
func Sign(secret, id string, ts time.Time, body []byte) string {
	key, err := DecodeSecret(secret)
	if err != nil {
		key = []byte(secret)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
