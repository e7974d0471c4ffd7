-- name: EnsureSetting
-- Stores a setting unless it exists, and returns the stored value (the first writer's wins).
WITH ins AS (
    INSERT INTO settings (name, value) VALUES ($1, $2)
    ON CONFLICT (name) DO NOTHING
    RETURNING value
)
SELECT value FROM ins
UNION ALL
SELECT value FROM settings WHERE name = $1
LIMIT 1;
