-- +goose Up
-- A rule whose condition failed at run time for an event (say, a score sent
-- as a string compared with a number) is skipped for that event and the
-- other rules still run; each skip is a row here, so `ciclo customer` shows
-- it next to what did happen.
CREATE TABLE IF NOT EXISTS rule_skips (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id      text        NOT NULL REFERENCES customers (id),
    rule             text        NOT NULL,
    rule_set_version text        NOT NULL,
    event_id         bigint,
    error            text        NOT NULL,
    skipped_at       timestamptz NOT NULL,
    PRIMARY KEY (customer_id, id)
);

-- +goose Down
DROP TABLE IF EXISTS rule_skips;
