-- Projections of the output topics for queries, written in the checkpoint transaction of the
-- partition that emitted them. A replay re-emits identical ids, so inserts are idempotent.

create table alerts (
  alert_id     text        primary key,
  type         text        not null,
  severity     text        not null,
  subject_kind text        not null,
  subject_id   text        not null,
  occurred_at  timestamptz not null,
  details      jsonb       not null default '{}',
  created_at   timestamptz not null default now()
);
create index alerts_by_time on alerts (occurred_at desc);
create index alerts_by_subject on alerts (subject_kind, subject_id, occurred_at desc);
create index alerts_by_type on alerts (type, occurred_at desc);

create table latest_recommendations (
  user_id      text        primary key,
  payload      jsonb       not null,
  generated_at timestamptz not null
);
