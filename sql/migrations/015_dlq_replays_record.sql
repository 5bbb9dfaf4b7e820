-- Which DLQ record each replayed offset held: its topic and its append time (epoch ms). A DLQ topic created again
-- (deleted to clear it, and created by the next start-up) numbers its records from 0 again, and another TOPIC_PREFIX's
-- DLQ has offsets of its own: by partition and offset alone, their records were taken for those replayed before and
-- never re-injected. Rows recorded before this migration name no topic ('') and no time (null): they still match any
-- DLQ record at their partition and offset, as they did.
alter table dlq_replays add column topic text not null default '';
alter table dlq_replays add column record_time bigint;
alter table dlq_replays drop constraint dlq_replays_pkey;
alter table dlq_replays add primary key (group_id, topic, partition, "offset");
