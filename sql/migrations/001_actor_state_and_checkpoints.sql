-- Actor state and per-partition checkpoints. A checkpoint writes the dirty states of a
-- partition and that partition's next offset in one transaction.

create table actor_states (
  kind       text        not null,            -- actor type: 'user', 'product', ...
  key        text        not null,            -- the actor's key (userId, productId, ...)
  state      jsonb       not null,            -- the logic's persisted form, timers included
  updated_at timestamptz not null default now(),
  primary key (kind, key)
);

create table partition_checkpoints (
  group_id    text        not null,
  topic       text        not null,
  partition   integer     not null,
  next_offset bigint      not null default 0,  -- first offset not yet reflected in actor_states
  epoch       bigint      not null default 0,  -- bumped by each new owner; fences off the old one
  owner       text,                             -- instance that holds the current epoch
  updated_at  timestamptz not null default now(),
  primary key (group_id, topic, partition)
);
