//! The CLI as a user meets it: run-id prefixes, --json, watch, help examples (issue 18).
