-- Sessions reaching each funnel stage (visited, viewed_product, added_to_cart, started_checkout,
-- purchased) in each stored minute: a windowed funnel counts sessions, not events, so that one
-- shopper adding three products counts once. Minutes stored before this count none.
alter table analytics_minutes add column sessions_reached jsonb not null default '{}';  -- stage -> sessions
