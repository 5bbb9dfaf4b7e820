-- A product's minute is counted per category: each view, cart add and order line under the category it
-- came with (else the product's), as the realtime revenue by category counts order lines. One row per
-- (product, minute) put the whole minute under its latest fact's category, so a product recategorised
-- within a minute, or an order line stating another category than the product's latest, moved revenue
-- between categories in the rankings only. Rows stored before keep their one category.
alter table product_minutes drop constraint product_minutes_pkey;
create unique index product_minutes_key on product_minutes (product_id, minute, (coalesce(category, '')));
