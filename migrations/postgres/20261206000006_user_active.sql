-- An ADMIN may deactivate a user without deleting them: the user cannot sign in and their
-- tokens end, but everything they own stays theirs, and reactivating them undoes it.
ALTER TABLE users ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
