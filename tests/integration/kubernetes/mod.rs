//! The Kubernetes executor against the in-repo fake API server.
