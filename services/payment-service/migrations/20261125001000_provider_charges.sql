-- The simulated payment provider's own records (docs/en/06-idempotency.md).
-- It stands for an external system: it is written outside the consumer's transaction,
-- and it deduplicates charges by the idempotency key the caller sends (the order id),
-- so a retried charge after a crash returns the first answer instead of charging twice.
CREATE TABLE provider_charges (
    idempotency_key text        PRIMARY KEY,
    amount_minor    bigint      NOT NULL,
    currency        char(3)     NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('APPROVED', 'DECLINED')),
    reason          text,
    calls           integer     NOT NULL DEFAULT 1,
    charged_at      timestamptz NOT NULL DEFAULT now()
);
