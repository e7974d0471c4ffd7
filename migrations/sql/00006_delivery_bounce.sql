-- +goose Up
-- message_key is a random value drawn when a delivery is queued. An email's
-- Message-ID is built from it and the sending domain, so Message-IDs are
-- unique across databases and installations, and the same on every retry of
-- one delivery. Rows queued before this migration get one here; rows already
-- finished keep NULL (their Message-ID is in provider_id).
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS message_key uuid;
ALTER TABLE deliveries ALTER COLUMN message_key SET DEFAULT gen_random_uuid();
UPDATE deliveries SET message_key = gen_random_uuid() WHERE message_key IS NULL AND status = 'queued';

-- bounce_class says how the last SMTP rejection of an email delivery was
-- read (RFC 3463 enhanced status code): mailbox (5.1.x, the address was
-- suppressed), policy (5.7.x), permanent (other 5xx), transient (4xx), or
-- config (the SMTP configuration is wrong; the delivery waits). NULL when
-- the last attempt was not rejected. enhanced_status is the code itself.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS bounce_class text;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS enhanced_status text;

-- +goose Down
ALTER TABLE deliveries DROP COLUMN IF EXISTS enhanced_status;
ALTER TABLE deliveries DROP COLUMN IF EXISTS bounce_class;
ALTER TABLE deliveries DROP COLUMN IF EXISTS message_key;
