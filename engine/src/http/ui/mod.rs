//! The dashboard: server-rendered pages (maud, every value escaped) over the HTTP
//! API, made live by a little plain JavaScript that listens to the API's Server-Sent
//! Events and patches the page (no full reloads), and acts through the API with the
//! session's CSRF token.
//!
//! Pages: runs (`/`), a run (`/runs/{id}`), workflows and jobs (`/workflows`,
//! `/workflows/{name}`), schedules (`/schedules`), engines (`/engines`). They sit
//! behind the API's own authentication; a browser without a session gets the login
//! form instead of a problem document. The stylesheet and scripts are embedded in the
//! binary (`/ui/assets/…`).

mod assets;
mod catalog;
mod graph;
mod ops;
mod page;
mod run;
mod runs;
mod timeline;

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Shared;

/// The dashboard's routes: pages behind the API's authentication (a login form for a
/// browser without a session), and the embedded assets, open to all.
pub(crate) fn routes(state: Shared) -> Router<Shared> {
    let pages = Router::new()
        .route("/", get(runs::page))
        .route("/runs", get(runs::page))
        .route("/ui/rows/{id}", get(runs::row))
        .route("/runs/{id}", get(run::page))
        .route("/workflows", get(catalog::list))
        .route("/workflows/{name}", get(catalog::one))
        .route("/schedules", get(ops::schedules))
        .route("/engines", get(ops::engines))
        .layer(middleware::from_fn_with_state(
            state,
            super::auth::authenticate,
        ))
        .layer(middleware::from_fn(login_when_refused));
    Router::new()
        .merge(pages)
        .route("/login", get(page::login_page))
        .route("/ui/assets/{file}", get(assets::serve))
}

/// A page refused for want of credentials becomes the login form (a browser, not an
/// API client, asked for it); other refusals keep their problem document.
async fn login_when_refused(request: Request, next: Next) -> Response {
    let get = request.method() == Method::GET;
    let next_path = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    if get && response.status() == StatusCode::UNAUTHORIZED {
        let mut r = page::login(Some(&next_path), None).into_response();
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    response
}
