-- The consumer group that owns this database's state (actor states carry no group). The first start-up that consumes
-- records its GROUP_ID here, with an insert that a concurrent start-up's insert waits for; every later start-up with
-- another GROUP_ID is refused. Checkpoint rows alone could not decide it: on a fresh database the first claim lands
-- seconds after the check, so two groups starting together (a typo in one) both passed and folded the log twice.
-- One row at most (`only_row` is always true). A database migrated with state already in it gets its row from the
-- first start-up after the upgrade, whose group must be the one that built that state (see sql/state_owner.ts).
create table state_owner (
  only_row   boolean     primary key default true check (only_row),
  group_id   text        not null,
  claimed_at timestamptz not null default now()
);
