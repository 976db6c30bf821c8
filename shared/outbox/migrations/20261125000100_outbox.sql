-- The transactional outbox (docs/en/02-produce.md).
-- A row is written in the same transaction as the business change; the relay moves it
-- PENDING -> SENDING (claimed, with a lease) -> SENT (broker acknowledged).
CREATE TABLE outbox (
    -- The event id (UUIDv7). Travels as the `event-id` header; consumers dedup on it.
    id              uuid        PRIMARY KEY,
    -- Write order. Rows are claimed by state, never by `seq > last_seen`, because
    -- sequence values are taken at insert but become visible at commit, out of order.
    seq             bigserial   NOT NULL UNIQUE,
    aggregate_id    text        NOT NULL,
    topic           text        NOT NULL,
    message_key     text        NOT NULL,
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state           text        NOT NULL DEFAULT 'PENDING'
                    CHECK (state IN ('PENDING', 'SENDING', 'SENT')),
    -- Optimistic lock: a claim is `UPDATE ... WHERE version = <read version>`.
    version         bigint      NOT NULL DEFAULT 0,
    -- When the row may be claimed: now for new rows, lease end for claimed rows (a
    -- crashed relay's rows come back when the lease runs out), backoff after a failure.
    available_at    timestamptz NOT NULL DEFAULT now(),
    claimed_by      text,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    kafka_partition integer,
    kafka_offset    bigint,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at         timestamptz
);

-- The relay's working set: unsent rows in write order.
CREATE INDEX outbox_unsent_idx ON outbox (seq) WHERE state <> 'SENT';
-- "Is there an earlier unsent event for this key?" (per-key order).
CREATE INDEX outbox_key_unsent_idx ON outbox (message_key, seq) WHERE state <> 'SENT';
CREATE INDEX outbox_aggregate_idx ON outbox (aggregate_id);

-- Wake the relay as soon as a row commits (LISTEN outbox_new), instead of waiting for
-- its next poll: the note's "the scheduled job adds latency", removed.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_new', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify_trg AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
