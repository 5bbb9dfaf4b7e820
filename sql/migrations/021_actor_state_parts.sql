-- A field of an actor's persisted form stored as rows of its own, one per element keyed by `part` (engine/actor.ts
-- PersistedParts): the global actor's minutes, of which a checkpoint under load rewrote ~1,440 finished ones (1 MB)
-- every second. `parts_field` names the field its row's state lacks; null: the state is whole (every row written before).
alter table actor_states add column parts_field text;
create table actor_state_parts (
  kind text   not null,
  key  text   not null,
  part bigint not null,
  data jsonb  not null,
  primary key (kind, key, part),
  foreign key (kind, key) references actor_states (kind, key) on delete cascade
) with (fillfactor = 70); -- the newest elements are rewritten by every checkpoint (migration 009)
