package reliability

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/unsubscribe"
)

// TestUnsubscribeTokens: a link from ana's email unsubscribes ana and no
// one else; a token forged with another secret, tampered with, or made of
// ana's signature over bo's details is refused (404) and changes nothing;
// replaying ana's link only unsubscribes ana again; and ana then gets no
// marketing email while bo does.
func TestUnsubscribeTokens(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	smtp := smtptest.Start(t)
	rules := writeFile(t, "rules.yaml", firstOrderRules+`  - name: news
    on: news
    actions:
      - email: { template: welcome, subject: "News" }
`)
	env := []string{"DATABASE_URL=" + withPool(db.URL, 10), "CICLO_SMTP_URL=" + smtp.URL, "CICLO_RULES=" + rules}
	p := startProc(t, "all", env, "--no-migrate", "--evaluate-workers", "2", "--email-workers", "2", "--sweep-workers", "1")
	ctx := context.Background()

	body, _ := firstOrders("u", 0, 2) // u-00000 (ana), u-00001 (bo)
	status, resp, err := postJSON(ctx, p.addr, "/v1/events", body)
	require.NoError(t, err)
	require.Equal(t, 202, status, resp)
	msgs := smtp.WaitMessages(t, 2, 30*time.Second)
	tokens := map[string]string{}
	linkRe := regexp.MustCompile(`/unsubscribe/([^>]+)>`)
	for _, m := range msgs {
		match := linkRe.FindStringSubmatch(m.Header.Get("List-Unsubscribe"))
		require.NotNil(t, match, m.Header.Get("List-Unsubscribe"))
		tok, err := url.PathUnescape(match[1])
		require.NoError(t, err)
		tokens[m.To[0]] = tok
	}
	ana, bo := tokens["u-00000@example.com"], tokens["u-00001@example.com"]
	require.NotEmpty(t, ana)
	require.NotEmpty(t, bo)

	unsubscribeWith := func(token string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+"/unsubscribe/"+url.PathEscape(token),
			strings.NewReader("List-Unsubscribe=One-Click"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	anaBody, anaSig, _ := strings.Cut(ana, ".")
	_, boSig, _ := strings.Cut(bo, ".")
	boBody := base64.RawURLEncoding.EncodeToString([]byte(`{"c":"u-00001","e":"u-00001@example.com"}`))
	otherBody := base64.RawURLEncoding.EncodeToString([]byte(`{"c":"u-00000","e":"eve@example.com"}`))
	refused := []struct{ name, token string }{
		{"ForgedWithAnotherSecret", unsubscribe.NewSigner("guessed-secret", "").Token("u-00001", "u-00001@example.com")},
		{"UnsignedBody", boBody},
		{"AnasSignatureOverBo", boBody + "." + anaSig},
		{"BosSignatureOverAna", anaBody + "." + boSig},
		{"AnasSignatureOverAnotherAddress", otherBody + "." + anaSig},
		{"TamperedSignature", anaBody + "." + anaSig[:len(anaSig)-2] + "AA"},
		{"TamperedBody", "A" + ana},
		{"Truncated", ana[:len(ana)-5]},
		{"Empty", "."},
	}
	for _, tc := range refused {
		require.Equal(t, http.StatusNotFound, unsubscribeWith(tc.token), tc.name)
	}
	require.Equal(t, 0, db.Count(t, "suppressions", ""), "a refused token writes nothing")

	require.Equal(t, http.StatusOK, unsubscribeWith(ana))
	require.Equal(t, http.StatusOK, unsubscribeWith(ana), "a replay is harmless")
	require.Equal(t, 1, db.Count(t, "suppressions", "email = 'u-00000@example.com' AND reason = 'unsubscribed'"))
	require.Equal(t, 1, db.Count(t, "suppressions", ""), "only ana")

	// Marketing email: bo gets it, ana does not.
	news := `[{"customer_id":"u-00000","type":"news"},{"customer_id":"u-00001","type":"news"}]`
	status, resp, err = postJSON(ctx, p.addr, "/v1/events", []byte(news))
	require.NoError(t, err)
	require.Equal(t, 202, status, resp)
	eventually(t, 30*time.Second, "the news deliveries to be decided", func() (bool, string) {
		n := db.Count(t, "deliveries", "rule = 'news' AND status <> 'queued'")
		return n == 2, fmt.Sprintf("%d of 2", n)
	})
	require.Equal(t, 1, db.Count(t, "deliveries", "rule = 'news' AND customer_id = 'u-00001' AND status = 'sent'"))
	require.Equal(t, 0, db.Count(t, "deliveries", "rule = 'news' AND customer_id = 'u-00000' AND status = 'sent'"))
	require.Len(t, smtp.Messages(), 3, "two first-order emails and bo's news")
	require.Equal(t, []string{"u-00001@example.com"}, smtp.Messages()[2].To)
}
