-- The partition clock (the largest event time handled, epoch ms) as of next_offset, written by
-- the same checkpoint. A new owner, or a worker rewinding to its checkpoint, resumes the clock
-- from here: restarting it at the next record's event time would hand a late record an earlier
-- ctx.now() than an uninterrupted run gives it, and timers armed from it would differ.
alter table partition_checkpoints add column clock bigint not null default 0;
