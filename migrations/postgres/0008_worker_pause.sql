-- Pausing a worker's queue: unlike `active = FALSE` (which refuses new tasks), a paused worker
-- still accepts tasks; they wait as pending until it is resumed. The claim statements skip
-- tasks whose worker row has `paused` set (see task_state::sql::worker_not_paused), on every
-- host. The existing trigger `s_workers_changed` tells every host of a pause or resume.
ALTER TABLE s_workers ADD COLUMN paused BOOLEAN NOT NULL DEFAULT FALSE;
