package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOutcomeWriteFailsAfterSend: the SMTP server accepted the email, then
// writing its outcome fails (here: the first two tries, refused by a
// trigger, as a database restart would). The accepted outcome is written
// again in process until it sticks, so the job's retry does not send the
// email a second time.
func TestOutcomeWriteFailsAfterSend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// nextval is not rolled back with the failing write: the trigger
	// refuses exactly the first two writes of a "sent" outcome.
	_, err := b.db.Pool.Exec(ctx, `
		CREATE SEQUENCE outcome_failures;
		CREATE FUNCTION fail_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.status = 'sent' AND nextval('outcome_failures') <= 2 THEN
				RAISE EXCEPTION 'injected: database went away after the send';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fail_outcome BEFORE UPDATE ON deliveries FOR EACH ROW EXECUTE FUNCTION fail_outcome();`)
	require.NoError(t, err)

	status, body := post(t, b.url, token, `{"customer_id":"c-1","type":"order_placed","email":"ana@example.com","properties":{"total":10}}`)
	require.Equal(t, http.StatusAccepted, status, body)
	b.smtp.WaitMessages(t, 1, 15*time.Second)
	// Without the in-process retry the job is retried (after 1 s, then
	// 16 s), and each retry sends the email again.
	deadline := time.Now().Add(30 * time.Second)
	for b.db.Count(t, "deliveries", "status = 'sent'") == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	waitJobs(t, b.db)

	require.Equal(t, 1, len(b.smtp.Messages()), "sent once")
	require.Equal(t, 1, b.db.Count(t, "deliveries", "customer_id = 'c-1' AND status = 'sent' AND attempts = 1"))
	var failures int64
	require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT last_value FROM outcome_failures").Scan(&failures))
	require.GreaterOrEqual(t, failures, int64(3), "the write failed twice and was tried again")
}
