-- +goose Up
-- Installation-wide settings ciclo generates once and every process shares,
-- such as the secret that signs unsubscribe links when none is configured.
CREATE TABLE IF NOT EXISTS settings (
    name       text        PRIMARY KEY,
    value      text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Unsubscribes and lifted suppressions find customers by address.
CREATE INDEX IF NOT EXISTS customers_lower_email_idx ON customers (lower(email));

-- +goose Down
DROP INDEX IF EXISTS customers_lower_email_idx;
DROP TABLE IF EXISTS settings;
