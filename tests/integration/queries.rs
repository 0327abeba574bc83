//! Store queries for the HTTP API (filters, keyset pages, counts by state, logs, the all-runs event feed) and engine heartbeats, on every store.
