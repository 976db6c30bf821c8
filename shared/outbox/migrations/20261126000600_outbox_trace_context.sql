-- The trace context of the request that wrote the row (docs/en/07-tracing-and-metrics.md).
--
-- A row waits in the table until the relay picks it up, in another task or another
-- process: no call stack connects the two, so the context must travel with the data.
-- `outbox::enqueue` stores the W3C `traceparent` (00-<trace id>-<span id>-<flags>) and
-- `tracestate` of the span it runs in; the relay opens its `send <topic>` span under
-- that context and passes it on in the Kafka headers. NULL: written outside any trace
-- (or before this column existed); the relay's span then starts a trace of its own.
ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE outbox ADD COLUMN tracestate text;
