-- A user's session generation: every token carries the one it was issued in, and a logout
-- moves it on, so the user's earlier tokens stop working at once.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
