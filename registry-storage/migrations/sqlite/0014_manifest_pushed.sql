-- When a push last named a manifest (a push of the same digest again moves
-- it, never `created`): retention deletes a manifest only if no push named
-- it after the run planned the delete.
ALTER TABLE manifests ADD COLUMN pushed INTEGER NOT NULL DEFAULT 0;
UPDATE manifests SET pushed = created;
