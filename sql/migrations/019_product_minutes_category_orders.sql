-- Orders per category: an order of three products of one category counted three times in the category's `orders`
-- (top-categories summed its products' orders). `category_orders` counts each order once per category, on the row of
-- its first line of that category. Rows stored before have none (null): their `orders` stand in for it.
alter table product_minutes add column category_orders bigint;
