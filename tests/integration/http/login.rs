//! Logins: failed ones limited per client and overall (429 with Retry-After), the
//! session cookie's `Secure` flag, and logging out with a read-only session.

use dagforge::http::Role;
use serde_json::{Value, json};

use super::{Server, memory, problem};

const OPERATOR: &str = "operator-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

/// The `Set-Cookie` header of a login with `token`, with `headers` added.
async fn login_cookie(s: &Server, token: &str, forwarded: Option<&str>) -> String {
    let mut req = s
        .client
        .post(s.url("/api/v1/session"))
        .json(&json!({"token": token}));
    if let Some(p) = forwarded {
        req = req.header("x-forwarded-proto", p);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["set-cookie"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_per_client() {
    let s = Server::start(memory(), |a| a.token(OPERATOR, Role::Operator)).await;
    let login = |token: &str| {
        s.client
            .post(s.url("/api/v1/session"))
            .json(&json!({"token": token}))
            .send()
    };
    for _ in 0..10 {
        problem(login("wrong-token").await.unwrap(), 401, "unauthorized").await;
    }
    // The 11th try is refused before the token is looked at: even the right one.
    let r = login(OPERATOR).await.unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let doc = problem(r, 429, "too-many-requests").await;
    assert!(
        doc["detail"].as_str().unwrap().contains("this address"),
        "{doc}"
    );
    // Bearer tokens from the same client too.
    let r = s
        .client
        .get(s.url("/api/v1/runs"))
        .header("authorization", format!("Bearer {OPERATOR}"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("retry-after"));
    problem(r, 429, "too-many-requests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bearer_tokens_count_as_failed_logins() {
    let s = Server::start(memory(), |a| a.token(OPERATOR, Role::Operator)).await;
    let get = |token: &str| {
        s.client
            .get(s.url("/api/v1/runs"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    assert_eq!(get(OPERATOR).await.unwrap().status(), 200);
    for _ in 0..10 {
        problem(get("guess").await.unwrap(), 401, "unauthorized").await;
    }
    problem(get(OPERATOR).await.unwrap(), 429, "too-many-requests").await;
    // Requests without credentials are not logins: still a plain 401.
    problem(s.get("/api/v1/runs").await, 401, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_secure_when_configured_or_behind_https() {
    let plain = Server::start(memory(), |a| a.token(OPERATOR, Role::Operator)).await;
    let c = login_cookie(&plain, OPERATOR, None).await;
    assert!(!c.contains("Secure"), "{c}");
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    let c = login_cookie(&plain, OPERATOR, Some("https")).await;
    assert!(c.ends_with("; Secure"), "behind a TLS proxy: {c}");
    let c = login_cookie(&plain, OPERATOR, Some("http")).await;
    assert!(!c.contains("Secure"), "{c}");

    let secure = Server::start(memory(), |a| {
        a.token(OPERATOR, Role::Operator).secure_cookies(true)
    })
    .await;
    let c = login_cookie(&secure, OPERATOR, None).await;
    assert!(c.ends_with("; Secure"), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_session_can_log_out() {
    let s = Server::start(memory(), |a| {
        a.token(OPERATOR, Role::Operator)
            .token(READER, Role::ReadOnly)
    })
    .await;
    let r = s
        .client
        .post(s.url("/api/v1/session"))
        .json(&json!({"token": READER}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let with = |req: reqwest::RequestBuilder| req.header("cookie", &session);
    assert_eq!(
        with(s.client.get(s.url("/api/v1/session")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Still read-only for everything else, and still with its CSRF token.
    problem(
        with(s.client.post(s.url("/api/v1/runs")))
            .header("x-csrf-token", &csrf)
            .json(&json!({"workflow": "squares"}))
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    problem(
        with(s.client.delete(s.url("/api/v1/session")))
            .send()
            .await
            .unwrap(),
        403,
        "csrf-rejected",
    )
    .await;
    let out = with(s.client.delete(s.url("/api/v1/session")))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    problem(
        with(s.client.get(s.url("/api/v1/session")))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
}
