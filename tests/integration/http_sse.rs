//! Server-Sent Events of the HTTP API: replay with `Last-Event-ID`, live events, cross-process streams, slow clients.
