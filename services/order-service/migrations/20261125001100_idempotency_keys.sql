-- Idempotency keys of POST /orders (src/api/idempotency.rs): the first answer given to
-- each key, so a retry with the same key gets it back instead of a second order.
-- A record is written and FINISHED in the same transaction as the order and its outbox
-- row: all three commit together or not at all.
CREATE TABLE idempotency_keys (
    -- The client's `Idempotency-Key` header: 1 to 255 visible ASCII characters.
    key               text        PRIMARY KEY CHECK (char_length(key) BETWEEN 1 AND 255),
    -- SHA-256 (hex) of method, path and body bytes: the same key with another request
    -- is refused instead of answered with an order the client did not ask for.
    request_hash      text        NOT NULL,
    -- STARTED while the transaction that inserted it runs (only it can see that state),
    -- FINISHED with the answer before it commits.
    state             text        NOT NULL DEFAULT 'STARTED'
                      CHECK (state IN ('STARTED', 'FINISHED')),
    response_status   smallint    CHECK (response_status BETWEEN 100 AND 599),
    response_body     jsonb,
    -- The `Location` header of the answer (the created order), replayed with it.
    response_location text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    CHECK (state = 'STARTED'
           OR (response_status IS NOT NULL AND response_body IS NOT NULL
               AND finished_at IS NOT NULL))
);

-- The purge deletes by age: records older than IDEMPOTENCY_RETENTION_HOURS.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
