-- A registration past its review is no longer in force (it drops out of the exports), so an
-- upgrade must not cut mail servers out of the firewall pass-list at once: every registration
-- due within six months of this migration gets its due date (reviewed_on + review_months) moved
-- to six months from now. The review dates replaced are kept. Keep in step with the other
-- backend's 0046_review_grace.sql.

CREATE TABLE review_dates_before_0046 (
    address      TEXT PRIMARY KEY REFERENCES hosts(address) ON DELETE CASCADE,
    reviewed_on  TEXT NOT NULL
);

INSERT INTO review_dates_before_0046 (address, reviewed_on)
SELECT address, reviewed_on FROM hosts
WHERE (reviewed_on::date + make_interval(months => review_months::int))
    < (CURRENT_DATE + interval '6 months');

UPDATE hosts
SET reviewed_on = to_char(CURRENT_DATE + make_interval(months => 6 - review_months::int), 'YYYY-MM-DD')
WHERE address IN (SELECT address FROM review_dates_before_0046);
