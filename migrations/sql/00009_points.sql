-- +goose Up
-- The loyalty points ledger. A grant is a lot with its own expiry; every
-- change of a customer's points is an entry, so the balance is the sum of
-- the entries, never a counter. A lot's remainder is what is left of it to
-- spend or expire; the check keeps it within 0..amount.
CREATE TABLE IF NOT EXISTS points_lots (
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id     text        NOT NULL REFERENCES customers (id),
    amount          bigint      NOT NULL CHECK (amount > 0),
    remaining       bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    reason          text        NOT NULL,
    rule            text        NOT NULL DEFAULT '',
    firing_id       bigint,
    -- The order that earned it, so a refund or cancellation reverses it.
    order_id        text        NOT NULL DEFAULT '',
    granted_at      timestamptz NOT NULL,
    -- Pending until then (e.g. the end of the return window).
    available_at    timestamptz NOT NULL,
    expires_at      timestamptz,
    -- Set when the expiry sweep turned the remainder into an expiry entry.
    expired_at      timestamptz,
    idempotency_key text        NOT NULL,
    PRIMARY KEY (customer_id, id),
    UNIQUE (customer_id, idempotency_key),
    CHECK (expires_at IS NULL OR expires_at > granted_at)
);
-- The expiry sweep reads only lots with something left to expire.
CREATE INDEX IF NOT EXISTS points_lots_expiry_idx ON points_lots (expires_at, customer_id, id)
    WHERE remaining > 0 AND expired_at IS NULL AND expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS points_lots_order_idx ON points_lots (customer_id, order_id) WHERE order_id <> '';

-- One row per spending operation (a redemption, a reversal, an adjustment),
-- unique on its key so a retried request answers the same and spends once.
CREATE TABLE IF NOT EXISTS points_operations (
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id     text        NOT NULL REFERENCES customers (id),
    kind            text        NOT NULL CHECK (kind IN ('redeem', 'reverse', 'adjust')),
    points          bigint      NOT NULL,
    order_id        text        NOT NULL DEFAULT '',
    reason          text        NOT NULL DEFAULT '',
    idempotency_key text        NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (customer_id, id),
    UNIQUE (customer_id, idempotency_key)
);

CREATE TABLE IF NOT EXISTS points_entries (
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id  text        NOT NULL REFERENCES customers (id),
    -- The lot it changes; NULL for a debt (a reversal of points already spent).
    lot_id       bigint,
    operation_id bigint,
    kind         text        NOT NULL CHECK (kind IN ('grant', 'spend', 'expire', 'reverse', 'adjust', 'debt')),
    -- Signed: grants add, everything else takes away.
    amount       bigint      NOT NULL CHECK (amount <> 0),
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (customer_id, id)
);
CREATE INDEX IF NOT EXISTS points_entries_created_idx ON points_entries (created_at);

-- +goose Down
DROP TABLE IF EXISTS points_entries;
DROP TABLE IF EXISTS points_operations;
DROP TABLE IF EXISTS points_lots;
