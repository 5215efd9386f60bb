-- Deleting a user is soft: the row stays, for the records that name it, but the user can no
-- longer sign in and their tokens end.
ALTER TABLE users ADD COLUMN deleted_at TEXT;
