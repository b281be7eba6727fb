-- Sweep notes (PostgreSQL): why a sweep left findings open that it covered but could not judge.
-- Keep in step with migrations/sqlite/0003_sweep_notes.sql.

ALTER TABLE sweeps ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
