-- Running engine instances and where they serve HTTP, so that an instance can forward a state
-- query to the owner of the key's partition (partition_checkpoints.owner names the instance).
-- A row is upserted at start-up, refreshed by a heartbeat, and deleted on graceful stop;
-- a row whose heartbeat is stale belongs to an instance that died.
create table instances (
  instance_id text        primary key,
  http_url    text        not null,
  updated_at  timestamptz not null default now()
);
