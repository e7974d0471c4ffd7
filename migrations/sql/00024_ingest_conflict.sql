-- +goose Up
-- Ingest sends an event's statements in one pipelined round trip and lets
-- the pipeline's transaction commit on its own; a reused idempotency key
-- with another payload must then abort that transaction from inside the
-- statement. This function raises that error (SQLSTATE CI409); its detail
-- is the id of the event the key was first used for.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ciclo_idempotency_conflict(customer_id text, idempotency_key text, event_id bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'idempotency key % of customer % was used for a different event (id %)', idempotency_key, customer_id, event_id
        USING ERRCODE = 'CI409', DETAIL = event_id::text;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION IF EXISTS ciclo_idempotency_conflict(text, text, bigint);
