-- Payments: one per order. UNIQUE(order_id) is the business key that stops a second
-- payment for the same order even if the dedup record were missing.
CREATE TABLE payments (
    id            uuid        PRIMARY KEY,
    order_id      uuid        NOT NULL UNIQUE,
    amount_minor  bigint      NOT NULL CHECK (amount_minor > 0),
    currency      char(3)     NOT NULL,
    status        text        NOT NULL CHECK (status IN ('SUCCEEDED', 'FAILED')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
