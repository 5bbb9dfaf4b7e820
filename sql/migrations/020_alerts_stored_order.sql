-- The order alerts were stored in, for GET /v1/alerts?order=stored (and `deno task tail` in embedded mode): the id of
-- the transaction that stored each. A reader lists only the alerts of transactions older than every one still running
-- (pg_snapshot_xmin), so an alert committed later can never sort before one already read. Alerts stored before this
-- migration share its transaction's id.
alter table alerts add column stored_xid xid8 not null default pg_current_xact_id();
create index alerts_by_stored on alerts (stored_xid, alert_id collate "C");
