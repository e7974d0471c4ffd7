-- +goose Up
-- Survey answers per UTC day, type and score (NPS, CSAT: docs/metrics.md
-- "Rollups"), and a version in the rollups' state: a fold whose rollup
-- definitions differ from the state's rebuilds every rollup.
CREATE TABLE IF NOT EXISTS report_score_days (
    day   date    NOT NULL,
    type  text    NOT NULL,
    score numeric NOT NULL,
    n     bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS report_score_days_idx ON report_score_days (day);
ALTER TABLE report_rollup_state ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 0;
ALTER TABLE report_rollup_state ADD COLUMN IF NOT EXISTS score_types text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE report_rollup_state DROP COLUMN IF EXISTS score_types;
ALTER TABLE report_rollup_state DROP COLUMN IF EXISTS version;
DROP TABLE IF EXISTS report_score_days;
