//! Notifications of a PostgreSQL store's changes: runs created, appended to,
//! released, finished, asked to cancel.

use sqlx::postgres::PgListener;

use crate::ids::RunId;

use super::super::StoreError;
use super::super::sql::backend;

/// What a [`Notification`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotificationKind {
    /// A run was created.
    Created,
    /// Events were appended to a run.
    Appended,
    /// A run's lease was released: it can be claimed now.
    Released,
    /// A run finished (its lane, if capped, has room for another).
    Finished,
    /// Someone asked for a run to be cancelled.
    CancelRequested,
}

/// A change to a run, from [`Notifications`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// The run.
    pub run: RunId,
    /// What happened.
    pub kind: NotificationKind,
}

/// Notifications of creates, appends and releases in one store's schema, by any engine
/// process: from [`PostgresStore::subscribe`](super::PostgresStore::subscribe).
///
/// Notifications are wake-up calls, not a log: PostgreSQL drops them while the
/// listening connection is down (it reconnects by itself), so after an error or on a
/// long silence, re-read the store.
#[derive(Debug)]
pub struct Notifications {
    pub(super) listener: PgListener,
}

impl Notifications {
    /// The next notification. An error means the connection was lost (it reconnects
    /// on the next call); notifications sent meanwhile are gone.
    pub async fn next(&mut self) -> Result<Notification, StoreError> {
        loop {
            let n = self
                .listener
                .recv()
                .await
                .map_err(|e| backend("receiving a notification", e))?;
            let Some((kind, run)) = n.payload().split_once(':') else {
                continue;
            };
            let kind = match kind {
                "created" => NotificationKind::Created,
                "appended" => NotificationKind::Appended,
                "released" => NotificationKind::Released,
                "finished" => NotificationKind::Finished,
                "cancel" => NotificationKind::CancelRequested,
                _ => continue,
            };
            if let Ok(run) = run.parse() {
                return Ok(Notification { run, kind });
            }
        }
    }
}
