-- Erasure of a contact on a data subject's request (`helpline erase`, `POST /api/v1/contacts/{id}/erase`):
-- when it was erased. The row stays (times, helpline, outcome: reports do not change); what was held
-- on the contact is deleted (src/store/erasures.rs). Portable SQL: SQLite and PostgreSQL.
ALTER TABLE contacts ADD COLUMN erased_at BIGINT;
