-- Pausing a worker's queue: unlike `active = 0` (which refuses new tasks), a paused worker
-- still accepts tasks; they wait as pending until it is resumed. The claim statements skip
-- tasks whose worker row has `paused` set (see task_state::sql::worker_not_paused), on every
-- host, so the flag holds across restarts and hosts because it lives only in this row.
ALTER TABLE s_workers ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
