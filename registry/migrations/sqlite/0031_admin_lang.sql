-- The language each administrator and network owner is written to in (en, ja; NULL: the notify
-- run's default). Keep in step with the other backend's 0031_admin_lang.sql.

ALTER TABLE hosts ADD COLUMN admin_lang TEXT CHECK (admin_lang IN ('en', 'ja'));
ALTER TABLE networks ADD COLUMN owner_lang TEXT CHECK (owner_lang IN ('en', 'ja'));
