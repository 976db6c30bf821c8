-- Payment outcomes applied to orders, for the order timeline.
ALTER TABLE orders ADD COLUMN payment_event_id uuid;
ALTER TABLE orders ADD COLUMN payment_reason text;
CREATE INDEX orders_created_at_idx ON orders (created_at DESC);
