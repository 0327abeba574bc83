use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::error::{ErrorKind, JobError};

#[derive(Debug)]
struct Pool(u32);

#[derive(Debug)]
struct AppSettings {
    size: u32,
}

fn counted(calls: &Arc<AtomicU32>) -> ResourceSet {
    let calls = Arc::clone(calls);
    ResourceSet::new().factory(move |_| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            Ok::<_, std::io::Error>(Pool(n))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_runs_once_however_many_ask_at_once() {
    let calls = Arc::new(AtomicU32::new(0));
    let live = counted(&calls).start().unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let live = live.clone();
            tokio::spawn(async move { live.get::<Pool>().await.map(|p| p.0).unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_factory_names_the_type_is_retryable_and_runs_again() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let set = ResourceSet::new().factory(move |_| {
        let first = c.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                Err(std::io::Error::other("connection refused"))
            } else {
                Ok(Pool(7))
            }
        }
    });
    let live = set.start().unwrap();
    let e = live.get::<Pool>().await.unwrap_err();
    assert!(matches!(e, ResourceError::Factory { .. }), "{e:?}");
    assert!(e.is_retryable());
    let job = JobError::from(e).to_info();
    assert_eq!(job.kind, ErrorKind::Failed);
    assert!(job.message.contains("Pool"), "{}", job.message);
    assert!(
        job.message.contains("connection refused"),
        "{}",
        job.message
    );
    assert_eq!(live.get::<Pool>().await.unwrap().0, 7);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_missing_resource_is_terminal_and_named() {
    let live = ResourceSet::new().value(1u8).start().unwrap();
    let e = live.get::<Pool>().await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.type_name(), std::any::type_name::<Pool>());
    let job = JobError::from(e);
    assert_eq!(job.kind(), ErrorKind::Terminal);
    assert!(job.message().contains("Pool"), "{job}");
    let keys = [ResourceKey::of::<u8>(), ResourceKey::of::<Pool>()];
    let e = live.check("export", &keys).unwrap_err().to_string();
    assert!(e.contains("Pool") && e.contains("export"), "{e}");
}

#[tokio::test]
async fn close_runs_once_for_what_was_built_in_reverse_order() {
    let closed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c1, c2, c3) = (closed.clone(), closed.clone(), closed.clone());
    let set = ResourceSet::new()
        .value(Pool(1))
        .factory(|_| async { Ok::<_, std::io::Error>(7u64) })
        .factory(|_| async { Ok::<_, std::io::Error>(String::from("never built")) })
        .on_close(move |p: Arc<Pool>| {
            let c = c1.clone();
            async move { c.lock().unwrap().push(format!("pool {}", p.0)) }
        })
        .on_close(move |n: Arc<u64>| {
            let c = c2.clone();
            async move { c.lock().unwrap().push(format!("u64 {n}")) }
        })
        .on_close(move |_: Arc<String>| {
            let c = c3.clone();
            async move { c.lock().unwrap().push("string".into()) }
        });
    let live = set.start().unwrap();
    assert_eq!(*live.get::<u64>().await.unwrap(), 7);
    live.close().await;
    live.close().await;
    assert_eq!(*closed.lock().unwrap(), ["u64 7", "pool 1"]);
}

#[tokio::test]
async fn settings_reach_factories_and_are_a_resource() {
    let set = ResourceSet::new()
        .settings(AppSettings { size: 4 })
        .factory(|s: Settings| async move {
            let size = s.get::<AppSettings>()?.size;
            Ok::<_, ResourceError>(Pool(size))
        });
    assert!(set.contains::<AppSettings>() && set.contains::<Pool>());
    let live = set.start().unwrap();
    assert_eq!(live.get::<Pool>().await.unwrap().0, 4);
    assert_eq!(live.get::<AppSettings>().await.unwrap().size, 4);
    let e = Settings::new(AppSettings { size: 1 })
        .get::<Pool>()
        .unwrap_err();
    assert!(e.to_string().contains("AppSettings"), "{e}");
    assert!(!format!("{:?}", Settings::new(AppSettings { size: 1 })).contains("size"));
}

#[test]
fn nothing_registered_starts_nothing_and_a_later_registration_replaces() {
    assert!(ResourceSet::new().start().is_none());
    let set = ResourceSet::new().value(Pool(1)).value(Pool(2));
    assert_eq!(set.type_names().len(), 1);
}

#[tokio::test]
async fn a_context_without_resources_reports_missing() {
    let ctx = crate::JobContext::detached("t");
    let e = ctx.resource::<Pool>().await.unwrap_err();
    assert!(matches!(e, ResourceError::Missing { .. }));
    let ctx = ctx.with_resources(&ResourceSet::new().value(Pool(3)));
    assert_eq!(ctx.resource::<Pool>().await.unwrap().0, 3);
}
