//! Workflows built from data: nodes and edges read at run time (issue 18).
