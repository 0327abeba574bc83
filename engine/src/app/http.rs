//! The HTTP API in the CLI (feature `http`): `serve --http ADDR` serves it beside the
//! engine, `http [ADDR]` serves only it. Tokens come from the environment
//! (`DAGFORGE_HTTP_TOKEN` for operators, `DAGFORGE_HTTP_READ_TOKEN` for read-only
//! clients), never from the command line where `ps` would show them.

use std::io::Write;
use std::net::SocketAddr;

use clap::Args;
use tokio::net::TcpListener;

use super::App;
use super::config::Settings;
use super::error::CliError;
use crate::Engine;
use crate::http::{Api, Role};

/// The operator token's environment variable.
const TOKEN_ENV: &str = "DAGFORGE_HTTP_TOKEN";
/// The read-only token's environment variable.
const READ_TOKEN_ENV: &str = "DAGFORGE_HTTP_READ_TOKEN";
/// Set to `1`/`true`/`yes` to mark the session cookie `Secure` (the API is served over
/// HTTPS); requests through a proxy saying `X-Forwarded-Proto: https` get it anyway.
const SECURE_COOKIES_ENV: &str = "DAGFORGE_HTTP_SECURE_COOKIES";
/// Where `http` listens without an address.
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// `serve`'s HTTP flags.
#[derive(Debug, Default, Args)]
pub(crate) struct HttpFlags {
    /// Also serve the HTTP API on this address (e.g. 127.0.0.1:8080). Off loopback it
    /// needs DAGFORGE_HTTP_TOKEN (or DAGFORGE_HTTP_READ_TOKEN), or --insecure-no-auth.
    #[arg(long = "http", env = "DAGFORGE_HTTP", value_name = "ADDR")]
    pub(crate) addr: Option<String>,
    /// Serve the HTTP API to anyone who can reach it, without a token.
    #[arg(long, env = "DAGFORGE_HTTP_INSECURE_NO_AUTH")]
    pub(crate) insecure_no_auth: bool,
    /// Serve only /healthz, /readyz and /metrics (Prometheus) on this address (e.g.
    /// 0.0.0.0:9464), without a token, for probes and scrapers; --http serves them
    /// too. They show states, counts and names, never inputs, outputs or run ids.
    #[arg(long = "metrics", env = "DAGFORGE_METRICS", value_name = "ADDR")]
    pub(crate) metrics: Option<String>,
}

/// `http`: the API alone.
#[derive(Debug, Args)]
pub(crate) struct HttpArgs {
    /// The address to listen on [default: `http` in the config file, else
    /// 127.0.0.1:8080]. Off loopback it needs DAGFORGE_HTTP_TOKEN (or
    /// DAGFORGE_HTTP_READ_TOKEN), or --insecure-no-auth.
    #[arg(value_name = "ADDR", env = "DAGFORGE_HTTP")]
    pub(crate) addr: Option<String>,
    /// Serve the API to anyone who can reach it, without a token.
    #[arg(long, env = "DAGFORGE_HTTP_INSECURE_NO_AUTH")]
    pub(crate) insecure_no_auth: bool,
}

/// The API of `engine` with the environment's tokens, bound to `addr`.
pub(super) async fn bind(
    engine: Engine,
    addr: &str,
    insecure: bool,
) -> Result<(Api, TcpListener, SocketAddr), CliError> {
    let parsed: SocketAddr = addr.trim().parse().map_err(|_| {
        CliError::usage(format!(
            "HTTP address `{}` is not IP:PORT (e.g. 127.0.0.1:8080)",
            super::table::escape(addr)
        ))
    })?;
    let secure = std::env::var(SECURE_COOKIES_ENV).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    });
    let mut api = Api::new(engine)
        .insecure_no_auth(insecure)
        .secure_cookies(secure);
    for (var, role) in [
        (TOKEN_ENV, Role::Operator),
        (READ_TOKEN_ENV, Role::ReadOnly),
    ] {
        if let Ok(token) = std::env::var(var) {
            if !token.trim().is_empty() && token.trim().len() < 16 {
                return Err(CliError::usage(format!(
                    "{var} is shorter than 16 characters: use a long random token"
                )));
            }
            api = api.token(token, role);
        }
    }
    api.check_bind(parsed)
        .map_err(|e| CliError::usage(e.to_string()))?;
    let listener = TcpListener::bind(parsed)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {parsed}: {e}")))?;
    let local = listener.local_addr()?;
    Ok((api, listener, local))
}

/// What the server says when it starts.
pub(super) fn announce(
    err: &mut (dyn Write + Send),
    local: SocketAddr,
    api: &Api,
) -> Result<(), CliError> {
    let auth = if api.has_tokens() {
        "token required"
    } else if local.ip().is_loopback() {
        "no token: loopback clients only"
    } else {
        "NO AUTHENTICATION (--insecure-no-auth)"
    };
    writeln!(
        err,
        "HTTP API on http://{local}/api/v1 ({auth}); OpenAPI at http://{local}/api/v1/openapi.json"
    )?;
    writeln!(err, "dashboard at http://{local}/")?;
    Ok(())
}

/// `http [ADDR]`: the API alone, until Ctrl-C.
pub(super) async fn http_only(
    app: &App,
    settings: &Settings,
    a: &HttpArgs,
    err: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let engine = super::commands::engine(app, settings).await?;
    let addr = a
        .addr
        .clone()
        .or_else(|| settings.http.clone())
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let (api, listener, local) = bind(engine, &addr, a.insecure_no_auth).await?;
    announce(err, local, &api)?;
    writeln!(
        err,
        "serving the API only (no runs are driven here); Ctrl-C stops"
    )?;
    let mut interrupts = super::interrupt::Interrupts::listen();
    api.serve(listener, async move {
        interrupts.next().await;
    })
    .await
    .map_err(|e| CliError::usage(e.to_string()))?;
    writeln!(err, "stopped")?;
    Ok(())
}

/// The API served in a task of its own beside `serve`.
pub(super) struct Server {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), crate::http::ServeError>>,
}

/// Serves `api` on `listener` in a task until [`Server::stop`].
pub(super) fn spawn(api: Api, listener: TcpListener) -> Server {
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    let task = tokio::spawn(api.serve(listener, async move { until.cancelled().await }));
    Server { stop, task }
}

impl Server {
    /// Stops serving: the live streams end, the requests in flight finish.
    pub(super) async fn stop(self) -> Result<(), CliError> {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CliError::usage(e.to_string())),
            Err(e) => Err(CliError::usage(format!("HTTP server: {e}"))),
        }
    }
}

/// The operations endpoints (`--metrics ADDR`) served in a task of their own.
pub(super) struct OpsServer {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `addr` and serves `/healthz`, `/readyz` and `/metrics` of `engine` there
/// until [`OpsServer::stop`]; says where on `err`.
pub(super) async fn spawn_ops(
    engine: &Engine,
    addr: &str,
    err: &mut (dyn Write + Send),
) -> Result<OpsServer, CliError> {
    let parsed: SocketAddr = addr.trim().parse().map_err(|_| {
        CliError::usage(format!(
            "metrics address `{}` is not IP:PORT (e.g. 127.0.0.1:9464)",
            super::table::escape(addr)
        ))
    })?;
    let listener = TcpListener::bind(parsed)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {parsed}: {e}")))?;
    let local = listener.local_addr()?;
    writeln!(
        err,
        "metrics on http://{local}/metrics; probes at http://{local}/healthz and /readyz"
    )?;
    let stop = tokio_util::sync::CancellationToken::new();
    let until = stop.clone();
    let task = tokio::spawn(crate::http::serve_ops(
        engine.clone(),
        listener,
        async move { until.cancelled().await },
    ));
    Ok(OpsServer { stop, task })
}

impl OpsServer {
    /// Stops serving; the requests in flight finish.
    pub(super) async fn stop(self) -> Result<(), CliError> {
        self.stop.cancel();
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CliError::usage(format!("metrics server: {e}"))),
            Err(e) => Err(CliError::usage(format!("metrics server: {e}"))),
        }
    }
}
