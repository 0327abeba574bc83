//! Faults of the database and of engines: outages of any length, fenced drivers, poison runs.
