-- Rows rewritten by every checkpoint get room on their page for the next version. Each checkpoint
-- updates every dirty actor's row (and its partition's checkpoint row and product minutes); with
-- full pages each new version goes to another page and the table bloats between vacuums.
-- `deno task bench store` (2,500 user states of 1.6 KB per transaction, twelve rounds): p50
-- 266-336 ms per transaction at fillfactor 100, 181-211 ms at 70; 165 MB of table and indexes
-- against 43 MB.
alter table actor_states set (fillfactor = 70);
alter table partition_checkpoints set (fillfactor = 70);
alter table product_minutes set (fillfactor = 70);
alter table analytics_minutes set (fillfactor = 70);
