-- +goose Up
-- Report rollups (issue #12, docs/metrics.md "Rollups"): small tables derived
-- from stage_transitions, events and rule_firings that a periodic job keeps up
-- (store.FoldReports), so that `ciclo report` reads them instead of the whole
-- log. They hold exactly what the raw queries give; a period or day is served
-- from them only while no row touching it has arrived since it was folded.

-- What changed since the last fold: one row per written row (source table,
-- customer, UTC day of its occurred_at / fired_at), appended by the triggers
-- below in the writer's own transaction. Append-only, no index, no counter
-- row: concurrent writers never wait on each other. The fold deletes exactly
-- the rows its snapshot saw (rows committed later stay), so no id watermark
-- can skip a row that commits out of order.
CREATE TABLE IF NOT EXISTS report_dirty (
    source      text NOT NULL,
    customer_id text NOT NULL,
    day         date NOT NULL
);

-- One row once the first full fold ran, with the parameters the rollups were
-- folded for; a report with other parameters reads the raw rows.
CREATE TABLE IF NOT EXISTS report_rollup_state (
    singleton             boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    folded_at             timestamptz NOT NULL,
    conversion_window_ms  bigint      NOT NULL,
    attribution_window_ms bigint      NOT NULL,
    order_types           text[]      NOT NULL
);

-- Stage changes per period (kind day, week, month, quarter; period is the
-- UTC bucket start as date_trunc gives it).
CREATE TABLE IF NOT EXISTS report_flow_periods (
    kind        text      NOT NULL,
    period      timestamp NOT NULL,
    from_stage  text      NOT NULL,
    to_stage    text      NOT NULL,
    transitions bigint    NOT NULL,
    customers   bigint    NOT NULL
);
CREATE INDEX IF NOT EXISTS report_flow_periods_idx ON report_flow_periods (kind, period);

-- Conversion per period: b '' is the customers who entered a in the period,
-- other rows how many of them entered b within the conversion window.
CREATE TABLE IF NOT EXISTS report_conversion_periods (
    kind   text      NOT NULL,
    period timestamp NOT NULL,
    a      text      NOT NULL,
    b      text      NOT NULL,
    n      bigint    NOT NULL
);
CREATE INDEX IF NOT EXISTS report_conversion_periods_idx ON report_conversion_periods (kind, period);

-- Buyers and repeat buyers per period.
CREATE TABLE IF NOT EXISTS report_repeat_periods (
    kind    text      NOT NULL,
    period  timestamp NOT NULL,
    repeat  bigint    NOT NULL,
    buyers  bigint    NOT NULL
);
CREATE INDEX IF NOT EXISTS report_repeat_periods_idx ON report_repeat_periods (kind, period);

-- Attributed orders and revenue per UTC day of the order and rule (revenue
-- numeric, so that sums of days are exact).
CREATE TABLE IF NOT EXISTS report_revenue_days (
    day     date    NOT NULL,
    rule    text    NOT NULL,
    orders  bigint  NOT NULL,
    revenue numeric NOT NULL
);
CREATE INDEX IF NOT EXISTS report_revenue_days_idx ON report_revenue_days (day);

-- Every exit from a stage that had an entry before it: the time in the stage
-- (seconds, as the raw query computes it). Refolded per customer, since a late
-- entry changes that customer's later spans.
CREATE TABLE IF NOT EXISTS report_stage_spans (
    customer_id text             NOT NULL,
    stage       text             NOT NULL,
    left_at     timestamptz      NOT NULL,
    seconds     double precision NOT NULL
);
CREATE INDEX IF NOT EXISTS report_stage_spans_left_idx ON report_stage_spans (left_at) INCLUDE (stage, seconds);
CREATE INDEX IF NOT EXISTS report_stage_spans_customer_idx ON report_stage_spans (customer_id);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION report_dirty_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO report_dirty VALUES ('stage_transitions', OLD.customer_id, (OLD.occurred_at AT TIME ZONE 'UTC')::date);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO report_dirty VALUES ('stage_transitions', NEW.customer_id, (NEW.occurred_at AT TIME ZONE 'UTC')::date);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION report_dirty_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO report_dirty VALUES ('events', OLD.customer_id, (OLD.occurred_at AT TIME ZONE 'UTC')::date);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO report_dirty VALUES ('events', NEW.customer_id, (NEW.occurred_at AT TIME ZONE 'UTC')::date);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION report_dirty_firings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO report_dirty VALUES ('rule_firings', OLD.customer_id, (OLD.fired_at AT TIME ZONE 'UTC')::date);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO report_dirty VALUES ('rule_firings', NEW.customer_id, (NEW.fired_at AT TIME ZONE 'UTC')::date);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- Updates fire only for the columns the reports read (evaluation's
-- evaluated_at and facts updates do not).
CREATE TRIGGER report_dirty AFTER INSERT OR DELETE OR UPDATE OF customer_id, from_stage, to_stage, occurred_at
    ON stage_transitions FOR EACH ROW EXECUTE FUNCTION report_dirty_transitions();
CREATE TRIGGER report_dirty AFTER INSERT OR DELETE OR UPDATE OF customer_id, type, occurred_at, properties
    ON events FOR EACH ROW EXECUTE FUNCTION report_dirty_events();
CREATE TRIGGER report_dirty AFTER INSERT OR DELETE OR UPDATE OF customer_id, rule, fired_at
    ON rule_firings FOR EACH ROW EXECUTE FUNCTION report_dirty_firings();

-- +goose Down
DROP TRIGGER IF EXISTS report_dirty ON rule_firings;
DROP TRIGGER IF EXISTS report_dirty ON events;
DROP TRIGGER IF EXISTS report_dirty ON stage_transitions;
DROP FUNCTION IF EXISTS report_dirty_firings();
DROP FUNCTION IF EXISTS report_dirty_events();
DROP FUNCTION IF EXISTS report_dirty_transitions();
DROP TABLE IF EXISTS report_stage_spans;
DROP TABLE IF EXISTS report_revenue_days;
DROP TABLE IF EXISTS report_repeat_periods;
DROP TABLE IF EXISTS report_conversion_periods;
DROP TABLE IF EXISTS report_flow_periods;
DROP TABLE IF EXISTS report_rollup_state;
DROP TABLE IF EXISTS report_dirty;
