//! Who gets in: tokens and roles, browser sessions and their CSRF token, the loopback
//! rule without a token, and the bind rule.

use std::net::SocketAddr;

use dagforge::http::{Api, Role, ServeError};
use serde_json::{Value, json};

use super::{Server, memory, problem};

const OPERATOR: &str = "operator-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_roles_sessions_and_csrf() {
    let s = Server::start(memory(), |a| {
        a.token(OPERATOR, Role::Operator)
            .token(READER, Role::ReadOnly)
    })
    .await;
    let c = &s.client;
    let runs = s.url("/api/v1/runs");
    let enqueue = json!({"workflow": "squares"});

    // No credentials, bad ones.
    let r = s.get("/api/v1/runs").await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"dagforge\"");
    problem(r, 401, "unauthorized").await;
    problem(
        c.get(&runs)
            .header("authorization", bearer("wrong"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    problem(
        c.get(&runs)
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    // The OpenAPI document and the login are open.
    assert_eq!(s.get("/api/v1/openapi.json").await.status(), 200);

    // Roles.
    let r = c
        .get(&runs)
        .header("authorization", bearer(READER))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let p = problem(
        c.post(&runs)
            .header("authorization", bearer(READER))
            .json(&enqueue)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("read_only"), "{p}");
    let r = c
        .post(&runs)
        .header("authorization", bearer(OPERATOR))
        .json(&enqueue)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let who: Value = c
        .get(s.url("/api/v1/session"))
        .header("authorization", bearer(READER))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who, json!({"role": "read_only", "auth": "bearer"}));

    // A browser session: login sets an HttpOnly, SameSite=Strict cookie.
    problem(
        c.post(s.url("/api/v1/session"))
            .json(&json!({"token": "nope"}))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    let r = c
        .post(s.url("/api/v1/session"))
        .json(&json!({"token": OPERATOR}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let login: Value = r.json().await.unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(login["role"], "operator");
    assert!(
        !login.to_string().contains(OPERATOR),
        "the token is never sent back"
    );
    // Reads with the cookie; the session tells its CSRF token again.
    let who: Value = c
        .get(s.url("/api/v1/session"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["csrf_token"], csrf.as_str());
    assert_eq!(
        c.get(&runs)
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Changes need the CSRF token, and a same-origin request.
    problem(
        c.post(&runs)
            .header("cookie", &session)
            .json(&enqueue)
            .send()
            .await
            .unwrap(),
        403,
        "csrf-rejected",
    )
    .await;
    problem(
        c.post(&runs)
            .header("cookie", &session)
            .header("x-csrf-token", "0".repeat(64))
            .json(&enqueue)
            .send()
            .await
            .unwrap(),
        403,
        "csrf-rejected",
    )
    .await;
    let host = s.base.trim_start_matches("http://").to_owned();
    let r = c
        .post(&runs)
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .header("origin", format!("http://{host}"))
        .json(&enqueue)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    problem(
        c.post(&runs)
            .header("cookie", &session)
            .header("x-csrf-token", &csrf)
            .header("origin", "http://evil.example")
            .json(&enqueue)
            .send()
            .await
            .unwrap(),
        403,
        "origin-rejected",
    )
    .await;
    problem(
        c.post(&runs)
            .header("cookie", &session)
            .header("x-csrf-token", &csrf)
            .header("sec-fetch-site", "cross-site")
            .json(&enqueue)
            .send()
            .await
            .unwrap(),
        403,
        "origin-rejected",
    )
    .await;
    // A read-only session may not change anything, CSRF token or not.
    let r = c
        .post(s.url("/api/v1/session"))
        .json(&json!({"token": READER}))
        .send()
        .await
        .unwrap();
    let ro = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let ro_csrf = r.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(
        c.post(&runs)
            .header("cookie", &ro)
            .header("x-csrf-token", &ro_csrf)
            .json(&enqueue)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    // Logout: the cookie is cleared and the session is gone.
    problem(
        c.delete(s.url("/api/v1/session"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
        403,
        "csrf-rejected",
    )
    .await;
    let r = c
        .delete(s.url("/api/v1/session"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    problem(
        c.get(&runs)
            .header("cookie", &session)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;

    // A login form: redirected to a local `next` only.
    let r = c
        .post(s.url("/api/v1/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={OPERATOR}&next=%2Fruns"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/runs");
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("HttpOnly")
    );
    let r = c
        .post(s.url("/api/v1/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={OPERATOR}&next=%2F%2Fevil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_only_loopback_hosts_and_same_origin_changes() {
    let s = Server::start(memory(), |a| a).await;
    let c = &s.client;
    let who: Value = s.json("/api/v1/session").await;
    assert_eq!(who, json!({"role": "operator", "auth": "none"}));
    // DNS rebinding: a page of evil.example resolved to 127.0.0.1.
    let p = problem(
        c.get(s.url("/api/v1/runs"))
            .header("host", "evil.example:8080")
            .send()
            .await
            .unwrap(),
        403,
        "origin-rejected",
    )
    .await;
    assert_eq!(
        (p["culprit"].as_str(), p["value"].as_str()),
        (Some("header.host"), Some("evil.example:8080"))
    );
    for host in ["localhost:1", "127.0.0.1", "[::1]:80"] {
        assert_eq!(
            c.get(s.url("/api/v1/runs"))
                .header("host", host)
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{host}"
        );
    }
    // A cross-site form post to the loopback API.
    problem(
        c.post(s.url("/api/v1/runs"))
            .header("origin", "http://evil.example")
            .json(&json!({"workflow": "squares"}))
            .send()
            .await
            .unwrap(),
        403,
        "origin-rejected",
    )
    .await;
    problem(
        c.post(s.url(&format!("/api/v1/runs/{}/cancel", dagforge::RunId::new())))
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap(),
        403,
        "origin-rejected",
    )
    .await;
    s.stop().await;

    // --insecure-no-auth: any host.
    let s = Server::start(memory(), |a| a.insecure_no_auth(true)).await;
    assert_eq!(
        s.client
            .get(s.url("/api/v1/runs"))
            .header("host", "build-box:8080")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let api = Api::new(dagforge::Engine::new());
    assert!(matches!(
        api.check_bind(any),
        Err(ServeError::NeedsToken { .. })
    ));
    assert!(api.check_bind(lo).is_ok());
    let msg = Api::new(dagforge::Engine::new())
        .check_bind(any)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("DAGFORGE_HTTP_TOKEN") && msg.contains("--insecure-no-auth"),
        "{msg}"
    );
    assert!(
        Api::new(dagforge::Engine::new())
            .token(OPERATOR, Role::Operator)
            .check_bind(any)
            .is_ok()
    );
    assert!(
        Api::new(dagforge::Engine::new())
            .insecure_no_auth(true)
            .check_bind(any)
            .is_ok()
    );
    // An empty token is no token.
    assert!(
        Api::new(dagforge::Engine::new())
            .token("  ", Role::Operator)
            .check_bind(any)
            .is_err()
    );
}
