-- Finished minutes of the global analytics: minute rollups that left the global actor's memory
-- (ANALYTICS_RETENTION_MINUTES), written by the checkpoint of the `analytics` partition that
-- retired them, so that windows longer than the memory can be answered. A finished minute never
-- changes, so a replay rewrites identical rows; the same checkpoints delete the rows older than
-- ANALYTICS_HISTORY_DAYS. Money is in thousandths; active users and sessions are the minute's
-- HyperLogLog estimates (a window's sum of them is an upper bound).
create table analytics_minutes (
  minute                  timestamptz primary key,  -- start of the minute
  events                  jsonb       not null,     -- event type -> count
  orders                  bigint      not null,
  revenue_millis          bigint      not null,
  page_views              bigint      not null,
  load_time_ms_sum        bigint      not null,
  load_time_samples       bigint      not null,
  checkouts               bigint      not null,
  carts_converted         bigint      not null,
  carts_abandoned         bigint      not null,
  checkouts_abandoned     bigint      not null,
  category_revenue_millis jsonb       not null,     -- category -> revenue
  active_users            bigint      not null,
  active_sessions         bigint      not null,
  stored_at               timestamptz not null default now()
);
