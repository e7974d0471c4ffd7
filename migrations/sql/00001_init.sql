-- +goose Up
-- ciclo's own tables. River's tables are created by rivermigrate, not here.
-- Every customer-keyed table carries customer_id and is only joined on it,
-- so the schema stays distributable by customer_id (see DESIGN.md).

CREATE TABLE IF NOT EXISTS customers (
    id                text        PRIMARY KEY,
    email             text        NOT NULL DEFAULT '',
    name              text        NOT NULL DEFAULT '',
    timezone          text        NOT NULL DEFAULT '',
    stage             text        NOT NULL DEFAULT '',
    stage_entered_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz,
    first_order_at    timestamptz,
    last_order_at     timestamptz,
    orders_count      integer     NOT NULL DEFAULT 0,
    total_spent_cents bigint      NOT NULL DEFAULT 0,
    attributes        jsonb       NOT NULL DEFAULT '{}',
    unsubscribed_at   timestamptz
);

CREATE TABLE IF NOT EXISTS events (
    id              bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id     text        NOT NULL REFERENCES customers (id),
    type            text        NOT NULL,
    properties      jsonb       NOT NULL DEFAULT '{}',
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    idempotency_key text,
    -- The customer's facts right after this event, which its rules see.
    facts           jsonb,
    -- Set once the event's rules ran; evaluation goes in id order per customer.
    evaluated_at    timestamptz,
    PRIMARY KEY (customer_id, id),
    UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS events_id_idx ON events (id);

CREATE TABLE IF NOT EXISTS rule_firings (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id      text        NOT NULL REFERENCES customers (id),
    rule             text        NOT NULL,
    occurrence       text        NOT NULL,
    rule_set_version text        NOT NULL,
    event_id         bigint,
    fired_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, id),
    -- The guard: a rule fires at most once per customer and occurrence.
    UNIQUE (customer_id, rule, occurrence)
);

CREATE TABLE IF NOT EXISTS stage_transitions (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id      text        NOT NULL REFERENCES customers (id),
    from_stage       text,
    to_stage         text        NOT NULL,
    rule             text,
    rule_set_version text        NOT NULL DEFAULT '',
    firing_id        bigint,
    occurred_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, id)
);
CREATE INDEX IF NOT EXISTS stage_transitions_occurred_at_idx ON stage_transitions (occurred_at);

CREATE TABLE IF NOT EXISTS coupons (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    code        text        NOT NULL UNIQUE,
    customer_id text        NOT NULL REFERENCES customers (id),
    rule        text        NOT NULL,
    firing_id   bigint      NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('percent', 'amount', 'free_shipping')),
    value       numeric     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    redeemed_at timestamptz,
    PRIMARY KEY (customer_id, id)
);
CREATE INDEX IF NOT EXISTS coupons_firing_idx ON coupons (customer_id, firing_id);

CREATE TABLE IF NOT EXISTS deliveries (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id   text        NOT NULL REFERENCES customers (id),
    firing_id     bigint      NOT NULL,
    rule          text        NOT NULL,
    channel       text        NOT NULL CHECK (channel IN ('email', 'webhook')),
    -- The action as written in the rule (template, subject, url…), so a
    -- delivery can be sent even after the rule file changed.
    action        jsonb       NOT NULL DEFAULT '{}',
    status        text        NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'sent', 'suppressed', 'skipped_cap', 'failed')),
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text        NOT NULL DEFAULT '',
    provider_id   text        NOT NULL DEFAULT '',
    response_code integer,
    -- Excerpt of the server's reply (SMTP, webhook body) or the outbox file.
    response      text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    PRIMARY KEY (customer_id, id)
);
CREATE INDEX IF NOT EXISTS deliveries_id_idx ON deliveries (id);
CREATE INDEX IF NOT EXISTS deliveries_sent_idx ON deliveries (customer_id, sent_at) WHERE status = 'sent';

CREATE TABLE IF NOT EXISTS suppressions (
    email      text        PRIMARY KEY,
    reason     text        NOT NULL CHECK (reason IN ('unsubscribed', 'bounced', 'manual')),
    detail     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE IF EXISTS suppressions;
DROP TABLE IF EXISTS deliveries;
DROP TABLE IF EXISTS coupons;
DROP TABLE IF EXISTS stage_transitions;
DROP TABLE IF EXISTS rule_firings;
DROP TABLE IF EXISTS events;
DROP TABLE IF EXISTS customers;
