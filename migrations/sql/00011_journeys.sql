-- +goose Up
-- Journeys: rules whose actions take time run as one row per customer and
-- key (journey_runs) that advances step by step. Each step a run executes is
-- a row in journey_steps, unique per run and step (steps only jump forward,
-- so a step runs at most once per run): the guard that makes a step run
-- exactly once across workers, retries and crashes. rule_set_sources keeps
-- each rule-set version a run started on, so a reload lets running runs
-- finish on the steps they started with.
CREATE TABLE IF NOT EXISTS rule_set_sources (
    version    text        PRIMARY KEY,
    source     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS journey_runs (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id      text        NOT NULL REFERENCES customers (id),
    rule             text        NOT NULL,
    key              text        NOT NULL DEFAULT '',
    rule_set_version text        NOT NULL,
    -- pc is the next step (instruction) to run; seq counts the waits passed:
    -- a step job names the seq it resumes, so a stale or repeated job is a no-op.
    pc               integer     NOT NULL DEFAULT 0,
    seq              integer     NOT NULL DEFAULT 0,
    -- state: running, waiting (a timer), waiting_event (wait_for), done,
    -- exited (exit condition), stopped (rule removed or failed).
    state            text        NOT NULL,
    wait_event       text,
    next_step_at     timestamptz,
    reentry_allowed  boolean     NOT NULL DEFAULT false,
    start_event_id   bigint,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    exit_reason      text,
    PRIMARY KEY (customer_id, id)
);

-- One active run per rule, customer and key unless the rule allows re-entry.
CREATE UNIQUE INDEX IF NOT EXISTS journey_runs_one_active
    ON journey_runs (customer_id, rule, key) WHERE ended_at IS NULL AND NOT reentry_allowed;
-- An event starts a rule's run at most once (evaluation retries).
CREATE UNIQUE INDEX IF NOT EXISTS journey_runs_start_event
    ON journey_runs (customer_id, rule, start_event_id);
-- Active runs of a customer, for events (exit, wait_for).
CREATE INDEX IF NOT EXISTS journey_runs_active
    ON journey_runs (customer_id) WHERE ended_at IS NULL;

CREATE TABLE IF NOT EXISTS journey_steps (
    customer_id text        NOT NULL,
    run_id      bigint      NOT NULL,
    pc          integer     NOT NULL,
    seq         integer     NOT NULL,
    step        text        NOT NULL,
    firing_id   bigint,
    executed_at timestamptz NOT NULL,
    PRIMARY KEY (customer_id, run_id, pc),
    FOREIGN KEY (customer_id, run_id) REFERENCES journey_runs (customer_id, id)
);

-- +goose Down
DROP TABLE IF EXISTS journey_steps;
DROP TABLE IF EXISTS journey_runs;
DROP TABLE IF EXISTS rule_set_sources;
