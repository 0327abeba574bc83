//! Serving the API on a listener, with the rule that a non-loopback address needs a
//! token.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::Api;

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address without a token (and without
    /// [`insecure_no_auth`](Api::insecure_no_auth)).
    #[error(
        "refusing to serve the HTTP API on {addr} without a token: set DAGFORGE_HTTP_TOKEN \
         (or Api::token), bind a loopback address (127.0.0.1), or pass --insecure-no-auth \
         to serve anyone on the network"
    )]
    NeedsToken {
        /// The address.
        addr: SocketAddr,
    },
    /// The listener failed.
    #[error("HTTP server: {0}")]
    Io(#[from] std::io::Error),
}

impl Api {
    /// Checks that the API may be served on `addr`: a loopback address, or a token
    /// configured, or [`insecure_no_auth`](Api::insecure_no_auth).
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), ServeError> {
        if addr.ip().to_canonical().is_loopback()
            || self.access.has_tokens()
            || self.access.insecure_no_auth
        {
            Ok(())
        } else {
            Err(ServeError::NeedsToken { addr })
        }
    }

    /// Serves the API on `listener` until `shutdown` completes, after checking its
    /// address ([`check_bind`](Api::check_bind)). On shutdown the live streams end and
    /// the requests in flight finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        self.check_bind(listener.local_addr()?)?;
        let closing = self.closing.clone();
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                closing.cancel();
            })
            .await?;
        Ok(())
    }
}
