-- Sweep notes (SQLite): why a sweep left findings open that it covered but could not judge.
-- Keep in step with migrations/postgres/0003_sweep_notes.sql.

ALTER TABLE sweeps ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
