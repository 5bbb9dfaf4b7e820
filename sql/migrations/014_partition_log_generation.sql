-- How many times the partition's log was found to start again below its checkpoint (its topic created again, or its
-- tail lost), raised with next_offset moved back in one statement (sql/checkpoints.ts restartLog). Output ids of a
-- generation above 0 name it, so that the new log's offsets do not repeat the ids of the old log's outputs: the
-- product and global actors took its facts for replays and dropped them, and the alerts table kept the old alerts.
alter table partition_checkpoints add column log_generation integer not null default 0;
