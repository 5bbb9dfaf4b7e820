-- Timers, expiry and partition ownership of actor states.
-- `partition` lets a new owner load a partition's pending timers without loading every state;
-- `next_timer_at` is the earliest pending timer (epoch ms, null when none);
-- `last_active_at` is the event time of the actor's last message (epoch ms), for STATE_TTL_DAYS.

alter table actor_states
  add column partition      integer not null default 0,
  add column timers         jsonb   not null default '{}',
  add column next_timer_at  bigint,
  add column last_active_at bigint  not null default 0;

create index actor_states_timers on actor_states (kind, partition) where next_timer_at is not null;
create index actor_states_expiry on actor_states (kind, partition, last_active_at);
