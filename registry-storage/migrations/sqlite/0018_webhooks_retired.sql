-- A webhook whose namespace was deleted: it receives no new event and is
-- removed once nothing is pending for it (nanoseconds since the epoch).
ALTER TABLE webhooks ADD COLUMN retired INTEGER;
