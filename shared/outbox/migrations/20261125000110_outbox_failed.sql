-- The relay's give-up state and housekeeping (docs/en/02-produce.md).
--
-- FAILED: a row whose send failed RELAY_MAX_ATTEMPTS times. The relay stops trying it
-- (it is never marked SENT) and an operator puts it back with `outbox::retry_failed`.
-- A FAILED row is still unsent, so it stays in the two `state <> 'SENT'` indexes: the
-- per-key check sees it, and later events of its key wait behind it instead of
-- overtaking it (see src/relay/claim.rs).
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('PENDING', 'SENDING', 'SENT', 'FAILED'));

-- What an operator looks at: the rows the relay gave up on (few, ideally none).
CREATE INDEX outbox_failed_idx ON outbox (seq) WHERE state = 'FAILED';

-- Housekeeping: SENT rows older than OUTBOX_RETENTION_HOURS are deleted in bounded
-- batches, oldest first; this index keeps that a range scan, not a table scan.
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE state = 'SENT';
