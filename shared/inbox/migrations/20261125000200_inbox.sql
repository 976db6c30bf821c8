-- The inbox (processed-messages table) of an idempotent consumer (docs/en/06-idempotency.md).
-- One row per (consumer group, event id), written in the same transaction as the
-- message's effect: if the effect committed, so did this row, and a redelivery finds it.
CREATE TABLE inbox (
    consumer_group       text        NOT NULL,
    message_id           uuid        NOT NULL,
    topic                text        NOT NULL,
    kafka_partition      integer     NOT NULL,
    kafka_offset         bigint      NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now(),
    -- How many later deliveries of this message were recognised and skipped.
    duplicate_deliveries integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer_group, message_id)
);
