-- The language a staff member chose for the staff pages (issue 23, item 1): `ro`, `ru`, `uk` or `en`;
-- NULL until chosen (the page then follows the browser). A code from a fixed list: nothing to seal.
ALTER TABLE users ADD COLUMN locale TEXT;
