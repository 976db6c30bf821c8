-- Orders: the business state the outbox event describes.
CREATE TABLE orders (
    id            uuid        PRIMARY KEY,
    customer_id   text        NOT NULL,
    amount_minor  bigint      NOT NULL CHECK (amount_minor > 0),
    currency      char(3)     NOT NULL,
    status        text        NOT NULL DEFAULT 'PENDING_PAYMENT'
                  CHECK (status IN ('PENDING_PAYMENT', 'PAID', 'PAYMENT_FAILED')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
