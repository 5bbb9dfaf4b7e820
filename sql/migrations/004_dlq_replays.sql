-- Dead-letter records that `deno task dlq replay` has re-injected, so that no later run
-- (with or without an error filter) re-injects them again.
create table dlq_replays (
  group_id    text        not null,
  partition   integer     not null,
  "offset"    bigint      not null,
  replayed_at timestamptz not null default now(),
  primary key (group_id, partition, "offset")
);
