-- A random secret per consumer group, created by the first start-up of an instance of the group and read by every
-- later one: an instance forwarding a query to the owner of its key puts it in the `x-engine-forwarded` header, and the
-- owner takes a request as forwarded only when it carries it. Any value a client could send was taken as another
-- instance's word: the query was answered where it arrived, never forwarded, in the stored form (engine bookkeeping).
create table forward_secrets (
  group_id   text        primary key,
  secret     text        not null,
  created_at timestamptz not null default now()
);
