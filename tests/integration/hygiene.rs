//! Secrets never shown, clear store errors, SQLite hygiene and CLI input checks.
