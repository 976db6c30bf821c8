-- The purge (`inbox::purge_older_than`) deletes a group's rows by age: index that path.
CREATE INDEX inbox_group_received_at ON inbox (consumer_group, received_at);
