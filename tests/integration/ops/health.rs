//! `/healthz` and `/readyz`: readiness turns false when the store goes out of reach
//! (a PostgreSQL connection cut by a proxy) and true again when it is back.

#[cfg(all(feature = "postgres", feature = "http"))]
mod postgres {
    use std::time::{Duration, Instant};

    use dagforge::prelude::*;
    use dagforge::store::PostgresStore;

    use super::super::proxy::Proxy;
    use crate::store::pg;

    /// Polls `url` until its status is `want` (or `limit` passes); the last status
    /// and body, and how long it took.
    async fn until(url: &str, want: u16, limit: Duration) -> (u16, String, Duration) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let t = Instant::now();
        loop {
            let (status, body) = match client.get(url).send().await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            };
            if status == want || t.elapsed() > limit {
                return (status, body, t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A serving engine on PostgreSQL through a proxy, its operations endpoints on a
    /// port of their own. Cutting the database off makes `/readyz` answer 503 naming
    /// the store (while `/healthz` stays 200); letting it through again makes it 200.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_follows_a_cut_postgres_connection() {
        let base = pg::url();
        let schema = format!(
            "ops_{}",
            dagforge::RunId::new().to_uuid_string().replace('-', "")
        );
        let direct = PostgresStore::options(&base)
            .schema(&schema)
            .connect()
            .await
            .expect("PostgreSQL at DATABASE_URL");
        let target = base
            .split('@')
            .nth(1)
            .and_then(|h| h.split('/').next())
            .unwrap_or("127.0.0.1:5432")
            .to_owned();
        let proxy = Proxy::start(target.clone()).await;
        let proxied = base.replacen(&target, &format!("127.0.0.1:{}", proxy.port), 1);
        let store = PostgresStore::options(&proxied)
            .schema(&schema)
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .unwrap();
        let engine = Engine::builder()
            .store(store)
            .lease_ttl(Duration::from_secs(1))
            .build();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .serve(Duration::from_millis(100), async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (close, closed) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(dagforge::http::serve_ops(engine.clone(), listener, async {
            let _ = closed.await;
        }));
        let ready = format!("http://{addr}/readyz");
        let healthy = format!("http://{addr}/healthz");

        let (status, body, _) = until(&ready, 200, Duration::from_secs(10)).await;
        assert_eq!((status, body.as_str()), (200, "ready\n"));

        proxy.down();
        let (status, body, took) = until(&ready, 503, Duration::from_secs(15)).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.starts_with("not ready\n- store: "), "{body}");
        assert!(took < Duration::from_secs(5), "noticed after {took:?}");
        let (status, _, _) = until(&healthy, 200, Duration::from_secs(5)).await;
        assert_eq!(status, 200, "the process is alive all along");
        // The metrics say so too.
        assert!(engine.metrics_text().await.contains("dagforge_store_up 0"));

        proxy.up();
        let (status, body, took) = until(&ready, 200, Duration::from_secs(15)).await;
        assert_eq!((status, body.as_str()), (200, "ready\n"), "after {took:?}");

        let _ = stop.send(());
        serving.await.unwrap().unwrap();
        let _ = close.send(());
        server.await.unwrap().unwrap();
        // Stopped serving: readiness no longer asks for recent turns.
        assert!(engine.readiness().await.ready);
        direct.drop_schema().await.unwrap();
    }
}

/// A serving engine on a healthy memory store is ready, and stays ready across
/// several lease-renewal intervals (its heartbeat keeps the marks fresh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_engine_stays_ready() {
    use std::time::Duration;

    use dagforge::prelude::*;

    let engine = Engine::builder().lease_ttl(Duration::from_secs(1)).build();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .serve(Duration::from_millis(200), async move {
                    let _ = stopped.await;
                })
                .await
        })
    };
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = engine.readiness().await;
        assert!(r.ready, "{r}");
    }
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
