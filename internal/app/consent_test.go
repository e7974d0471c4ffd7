package app_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/integrations/shopify"
	"github.com/ciclohq/ciclo/internal/app"
)

// TestStoreConsent follows a store's "no email-marketing consent" from its
// Shopify webhook to the dispatch: marketing email is suppressed with the
// reason, transactional email is sent.
func TestStoreConsent(t *testing.T) {
	t.Parallel()
	const secret = "shopify-secret"
	b := channelSetupWith(t, noon, func(c *app.Config) { c.ShopifySecrets = []string{secret} })

	raw, err := os.ReadFile(filepath.Join("..", "..", "integrations", "shopify", "testdata", "customers_email_marketing_consent_update.json"))
	require.NoError(t, err)
	body := strings.Replace(string(raw), `"state": "subscribed"`, `"state": "unsubscribed"`, 1)
	req, err := http.NewRequest(http.MethodPost, b.url+"/v1/integrations/shopify", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set(shopify.HeaderTopic, "customers_email_marketing_consent/update")
	req.Header.Set(shopify.HeaderEventID, "evt-consent")
	req.Header.Set(shopify.HeaderHmac, shopify.Sign([]byte(body), secret))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	const customer = "706405506930370084"
	b.event(t, `{"customer_id":"`+customer+`","type":"promo","name":"Bob"}`)
	b.event(t, `{"customer_id":"`+customer+`","type":"receipt"}`)

	receipt := b.waitDeliveries(t, customer, "receipt", 1)[0]
	require.Equal(t, "sent", receipt.Status, "transactional email goes out")
	msgs := b.smtp.WaitMessages(t, 1, 15*time.Second)
	require.Equal(t, "Your receipt", msgs[0].Header.Get("Subject"))

	promo := b.waitDeliveries(t, customer, "promo", 1)[0]
	require.Equal(t, "suppressed", promo.Status)
	require.Equal(t, "no email-marketing consent in the store's record", promo.LastError)
	require.Len(t, b.smtp.Messages(), 1, "no marketing email")
}
