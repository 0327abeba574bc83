//! The HTTP API (`dagforge::http`) driven over real HTTP: REST endpoints, errors, auth.
