-- Per-product, per-minute counts (event time) for windowed rankings of products and categories.
-- Rows are ADDED to by the checkpoint of the product-events partition that owns the product, in
-- the transaction that advances its offset past the facts counted, so each fact counts once (a
-- replay only recomputes what was not committed). The same checkpoints delete the partition's
-- rows older than ANALYTICS_HISTORY_DAYS. Money is in thousandths.
create table product_minutes (
  product_id     text        not null,
  minute         timestamptz not null,  -- start of the minute
  partition      integer     not null,  -- product-events partition that writes (and prunes) the row
  category       text,                  -- the product's category as of its latest fact in the minute
  brand          text,
  views          bigint      not null,
  cart_adds      bigint      not null,
  orders         bigint      not null,  -- orders containing the product
  units          bigint      not null,  -- units sold
  revenue_millis bigint      not null,
  primary key (product_id, minute)
);
create index product_minutes_minute on product_minutes (minute);
create index product_minutes_partition_minute on product_minutes (partition, minute);
