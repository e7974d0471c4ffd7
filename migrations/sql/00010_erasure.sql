-- +goose Up
-- Erasure (DELETE /v1/customers/{id}): an erased person's address is kept
-- only as a hash ('sha256:' || hex of sha256(lower(address))) so that they
-- are never mailed again, and the anonymised customer row says when.
ALTER TABLE suppressions DROP CONSTRAINT IF EXISTS suppressions_reason_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_reason_check
    CHECK (reason IN ('unsubscribed', 'bounced', 'manual', 'erased'));
ALTER TABLE customers ADD COLUMN IF NOT EXISTS erased_at timestamptz;

-- +goose Down
ALTER TABLE customers DROP COLUMN IF EXISTS erased_at;
DELETE FROM suppressions WHERE reason = 'erased';
ALTER TABLE suppressions DROP CONSTRAINT IF EXISTS suppressions_reason_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_reason_check
    CHECK (reason IN ('unsubscribed', 'bounced', 'manual'));
