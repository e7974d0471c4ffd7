package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/jobs"
)

// emailRow is what the email tests read of a delivery.
type emailRow struct {
	ID                                int64
	Status, LastError, ProviderID     string
	Attempts                          int
	MessageKey, BounceClass, Enhanced string
}

func (b *channelBundle) emailRow(t *testing.T, customer string) emailRow {
	t.Helper()
	var r emailRow
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), `SELECT id, status, last_error, provider_id, attempts,
		COALESCE(message_key::text, ''), COALESCE(bounce_class, ''), COALESCE(enhanced_status, '')
		FROM deliveries WHERE customer_id = $1 AND channel = 'email' ORDER BY id LIMIT 1`, customer).
		Scan(&r.ID, &r.Status, &r.LastError, &r.ProviderID, &r.Attempts, &r.MessageKey, &r.BounceClass, &r.Enhanced))
	return r
}

// TestEmailDelivery's cases run one after the other: each runs a whole
// process, and Postgres's connections are shared with the other tests.
func TestEmailDelivery(t *testing.T) {
	t.Parallel()

	t.Run("MessageIDsUniqueAcrossDatabases", func(t *testing.T) {
		a := channelSetup(t, noon)
		b := channelSetupWith(t, noon, func(c *app.Config) { c.From = "Shop <news@Shop.Example>" })
		var ids []string
		for _, x := range []*channelBundle{a, b} {
			x.event(t, `{"customer_id":"c-1","type":"promo","email":"ana@example.com","name":"Ana"}`)
			msg := x.smtp.WaitMessages(t, 1, 15*time.Second)[0]
			d := x.waitDeliveries(t, "c-1", "promo", 1)[0]
			require.Equal(t, int64(1), d.ID, "each database numbers its deliveries from 1")
			require.Equal(t, d.ProviderID, msg.Header.Get("Message-Id"))
			ids = append(ids, d.ProviderID)
		}
		require.NotEqual(t, ids[0], ids[1], "delivery 1 of two databases")
		require.True(t, strings.HasSuffix(ids[0], "@example.com>"), ids[0])
		require.True(t, strings.HasSuffix(ids[1], "@shop.example>"), "domain from CICLO_FROM: %s", ids[1])
	})

	t.Run("MessageIDStableAcrossRetries", func(t *testing.T) {
		b := channelSetup(t, noon)
		b.smtp.FailNext(451, "try again later", 1)
		b.event(t, `{"customer_id":"c-2","type":"promo","email":"bo@example.com","name":"Bo"}`)
		d := b.waitDeliveries(t, "c-2", "promo", 1)[0]
		require.Equal(t, "sent", d.Status)
		require.Equal(t, 2, d.Attempts)
		tries := b.smtp.Tries()
		require.Len(t, tries, 2, "451 then 250")
		first, second := tries[0].Header.Get("Message-Id"), tries[1].Header.Get("Message-Id")
		require.NotEmpty(t, first)
		require.Equal(t, first, second, "the retry carries the same Message-ID")
		require.Equal(t, d.ProviderID, second)
		key := b.emailRow(t, "c-2").MessageKey
		require.Contains(t, first, strings.ReplaceAll(key, "-", ""), "built from the key stored with the delivery")
	})

	t.Run("BounceClasses", func(t *testing.T) {
		b := channelSetup(t, noon)
		tests := []struct {
			name       string
			script     func()
			wantStatus string
			wantClass  string
			wantEnh    string
			suppressed bool
		}{
			{"RcptBadMailbox", func() { b.smtp.RejectRcptEnhanced(550, gosmtp.EnhancedCode{5, 1, 1}, "no such user", 1) },
				"failed", "mailbox", "5.1.1", true},
			{"DataBadMailbox", func() { b.smtp.FailNextEnhanced(550, gosmtp.EnhancedCode{5, 1, 1}, "mailbox unknown", 1) },
				"failed", "mailbox", "5.1.1", true},
			{"DataPolicy", func() { b.smtp.FailNextEnhanced(554, gosmtp.EnhancedCode{5, 7, 1}, "looks like spam", 1) },
				"failed", "policy", "5.7.1", false},
			{"RcptPolicy", func() { b.smtp.RejectRcptEnhanced(550, gosmtp.EnhancedCode{5, 7, 1}, "relay denied", 1) },
				"failed", "policy", "5.7.1", false},
			{"RcptPlain5xx", func() { b.smtp.RejectRcptEnhanced(550, gosmtp.NoEnhancedCode, "no such user", 1) },
				"failed", "permanent", "", false},
			{"DataTransientThenSent", func() { b.smtp.FailNextEnhanced(452, gosmtp.EnhancedCode{4, 2, 2}, "mailbox full", 1) },
				"sent", "", "", false},
		}
		for i, tt := range tests {
			cust := "b-" + string(rune('a'+i))
			email := strings.ToLower(tt.name) + "@example.com"
			tt.script()
			b.event(t, `{"customer_id":"`+cust+`","type":"promo","email":"`+email+`","name":"X"}`)
			d := b.waitDeliveries(t, cust, "promo", 1)[0]
			r := b.emailRow(t, cust)
			require.Equal(t, tt.wantStatus, d.Status, tt.name)
			require.Equal(t, tt.wantClass, r.BounceClass, tt.name)
			require.Equal(t, tt.wantEnh, r.Enhanced, tt.name)
			n := b.db.Count(t, "suppressions", "email = $1 AND reason = 'bounced'", email)
			require.Equal(t, tt.suppressed, n == 1, "%s: suppressed", tt.name)
			if tt.wantStatus == "failed" {
				require.Equal(t, 1, d.Attempts, "%s: a 5xx is not retried", tt.name)
			} else {
				require.Equal(t, 2, d.Attempts, "%s: a 4xx is retried", tt.name)
			}
		}
	})

	t.Run("ConfigurationErrorWaitsWithTheFix", func(t *testing.T) {
		// smtp:// without ?tls= requires STARTTLS, which the test server
		// (a local relay without TLS) does not offer.
		b := channelSetupWith(t, noon, func(c *app.Config) { c.SMTPURL = strings.TrimSuffix(c.SMTPURL, "?tls=none") })

		status, _, body := get(t, b.url+"/readyz")
		require.Equal(t, http.StatusOK, status, "the API still accepts events: %s", body)
		var ready struct {
			Checks map[string]string `json:"checks"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &ready))
		require.Equal(t, "SMTP server does not offer STARTTLS, which smtp:// requires unless the URL says otherwise; "+
			"set ?tls=none in CICLO_SMTP_URL for a local relay without TLS, or use smtps:// if it speaks implicit TLS", ready.Checks["smtp"])

		b.event(t, `{"customer_id":"c-5","type":"promo","email":"cy@example.com","name":"Cy"}`)
		waitFor(t, "the configuration error recorded", func() bool {
			return b.db.Count(t, "deliveries", "customer_id = 'c-5' AND bounce_class = 'config'") == 1
		})
		r := b.emailRow(t, "c-5")
		require.Equal(t, "queued", r.Status, "not failed: the email waits for the fix")
		require.Equal(t, 0, r.Attempts, "no attempt counted")
		require.Contains(t, r.LastError, "does not offer STARTTLS")
		require.Contains(t, r.LastError, "set ?tls=none in CICLO_SMTP_URL")
		waitFor(t, "the dispatch job snoozed", func() bool {
			return b.db.Count(t, "river_job", "kind = 'ciclo.dispatch' AND state = 'scheduled' AND scheduled_at > now() + interval '4 minutes'") == 1
		})
		require.Equal(t, 0, b.db.Count(t, "river_job", "kind = 'ciclo.dispatch' AND state IN ('retryable', 'discarded', 'cancelled')"),
			"not a transient failure retried with backoff")
		require.Zero(t, b.smtp.Attempts())
	})

	t.Run("ConfigurationErrorInABatch", func(t *testing.T) {
		// Credentials the server refuses: every delivery of a campaign's
		// batch waits, each in a job of its own snoozed for the fix.
		srv := smtptest.StartWithOptions(t, smtptest.Options{Username: "ciclo", Password: "s3cret"})
		b := channelSetupWith(t, noon, func(c *app.Config) { c.SMTPURL = "smtp://ciclo:wrong@" + srv.Addr + "?tls=none" })
		b.event(t, `[{"customer_id":"k1","type":"seen","email":"k1@example.com","attributes":{"segment":"campaign"}},
			{"customer_id":"k2","type":"seen","email":"k2@example.com","attributes":{"segment":"campaign"}}]`)
		waitJobs(t, b.db)
		_, err := b.app.River.Insert(context.Background(), jobs.SweepArgs{Tick: noon, Rules: []string{"campaign-a"}}, nil)
		require.NoError(t, err)
		waitFor(t, "both deliveries waiting", func() bool {
			return b.db.Count(t, "deliveries", "rule = 'campaign-a' AND status = 'queued' AND attempts = 0 AND bounce_class = 'config'"+
				" AND last_error LIKE '%rejected the user name and password; check the user and password in CICLO_SMTP_URL%'") == 2
		})
		waitFor(t, "a job each, snoozed", func() bool {
			return b.db.Count(t, "river_job", "kind = 'ciclo.dispatch' AND state = 'scheduled' AND scheduled_at > now() + interval '4 minutes'") == 2
		})
		require.Equal(t, 1, b.db.Count(t, "river_job", "kind = 'ciclo.dispatch_batch' AND state = 'completed'"))
		require.Empty(t, srv.Messages())
	})

	t.Run("WorkerUnreadyOnConfigurationError", func(t *testing.T) {
		b := channelSetupWith(t, noon, func(c *app.Config) {
			c.SMTPURL = strings.TrimSuffix(c.SMTPURL, "?tls=none")
			c.Role = app.RoleWorker
		})
		status, _, body := get(t, b.url+"/readyz")
		require.Equal(t, http.StatusServiceUnavailable, status, body)
		require.Contains(t, body, "set ?tls=none in CICLO_SMTP_URL")
		require.NotContains(t, body, b.smtp.Addr, "the public endpoint does not show the server's address")
	})
}
