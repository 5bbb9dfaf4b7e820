-- Alerts are kept for ALERT_RETENTION_DAYS from when they were stored (created_at), not from when they
-- occurred: an import of old events keeps its alerts. The pruning finds its oldest rows by this index.
-- alerts_by_time (occurred_at) stays: GET /v1/alerts reads by it.
create index alerts_by_created on alerts (created_at);
