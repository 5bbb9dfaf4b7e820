-- The topic's partition count each actor row was placed by (null: written before this migration, or by a worker that
-- was given no count). A claim reads the pending timers of its own partition's rows placed by the current count, and
-- of the rows placed by another count (keys a raised count may have moved here) only: it used to read every
-- partition's pending timers and place each key itself, 100,000 rows per partition claimed with 100,000 users waiting
-- on a timer over 12 partitions (docs/performance.md). The index serves both parts of that read.
alter table actor_states add column partition_count integer;
create index actor_states_placed_timers on actor_states (kind, partition_count, partition)
  where next_timer_at is not null;
drop index actor_states_timers;
