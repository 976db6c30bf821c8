-- TEACHING SCHEMA for the unsafe toggles of the failure matrix's "every dedup layer off"
-- row (docs/en/09-failure-matrix.md). Nothing writes here unless DEDUP_BUSINESS_KEY=false.

-- The payments table without its business key: no UNIQUE(order_id). With
-- DEDUP_BUSINESS_KEY=false the service writes payments here instead, so a copy that got
-- past every other layer is paid a second time, visibly (tools/reconcile reads both).
CREATE TABLE payments_without_business_key (LIKE payments INCLUDING DEFAULTS);

-- Each charge names its order, so the reconciliation counts charges per order at the
-- provider, not only payment rows. A caller that sends no idempotency key
-- (DEDUP_PROVIDER_KEY=false) makes a new charge per call: several rows for one order.
ALTER TABLE provider_charges ADD COLUMN order_id uuid;
UPDATE provider_charges SET order_id = idempotency_key::uuid
 WHERE idempotency_key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
