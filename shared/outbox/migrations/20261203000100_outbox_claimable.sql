-- What a claim reads (src/relay/claim.rs), so that it never walks past rows in flight.
--
-- The streaming relay keeps thousands of rows in flight: claimed (SENDING, their lease
-- in the future) and not yet acked. They have the smallest `seq` of all unsent rows,
-- so a claim that scanned `outbox_unsent_idx` in `seq` order read past every one of
-- them, on every claim, before it found a row to take (EXPLAIN ANALYZE: 2,000 of 2,200
-- index rows filtered out, three quarters of the claim). A claim now reads two short
-- lists instead: PENDING rows in `seq` order, and SENDING rows whose lease has run out.

-- Rows waiting for their first send, or for a retry: the claim's main list.
CREATE INDEX outbox_pending_idx ON outbox (seq) WHERE state = 'PENDING';

-- Claimed rows by lease end: the leases that ran out (a relay died holding them) are a
-- range at the start, however many rows are in flight behind it.
CREATE INDEX outbox_lease_idx ON outbox (available_at) WHERE state = 'SENDING';
