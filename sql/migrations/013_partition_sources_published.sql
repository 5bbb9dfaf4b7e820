-- A fed partition's release (the analytics partition's clock at its latest idle advance: how far the `events`
-- partitions had published their facts, engine/source_watermark.ts) as of next_offset, written by the same checkpoint
-- as the clock; null: none. A new owner resumes it from here as a rewind does: without it, a restart between
-- checkpointing an idle advance and checkpointing the business alerts it released replayed them later, under other ids.
alter table partition_checkpoints add column sources_published bigint;
