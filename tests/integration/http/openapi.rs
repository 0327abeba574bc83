//! The OpenAPI document: valid against the OpenAPI 3.1 schema, and describing every
//! route the server answers.

use serde_json::Value;

use super::{Server, memory};

/// The official OpenAPI 3.1 JSON Schema (iteration 2022-10-07, as published by the
/// OpenAPI Initiative), vendored.
const OAS_31_SCHEMA: &str = include_str!("../../fixtures/openapi-3.1-schema.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_openapi_3_1_and_complete() {
    let s = Server::start(memory(), |a| a).await;
    let r = s.get("/api/v1/openapi.json").await;
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );

    let schema: Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema catches a broken document (the test can fail).
    let mut broken = doc.clone();
    broken["paths"]["/api/v1/runs"]["get"]["responses"] = Value::String("none".into());
    assert!(!validator.is_valid(&broken));

    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/runs", &["get", "post"][..]),
        ("/api/v1/runs/{id}", &["get"]),
        ("/api/v1/runs/counts", &["get"]),
        ("/api/v1/engines", &["get"]),
        ("/api/v1/runs/{id}/nodes", &["get"]),
        ("/api/v1/runs/{id}/nodes/{node}", &["get"]),
        ("/api/v1/runs/{id}/nodes/{node}/items", &["get"]),
        ("/api/v1/runs/{id}/history", &["get"]),
        ("/api/v1/runs/{id}/logs", &["get"]),
        ("/api/v1/runs/{id}/attempts", &["get"]),
        ("/api/v1/runs/{id}/artifacts", &["get"]),
        ("/api/v1/runs/{id}/events", &["get"]),
        ("/api/v1/runs/{id}/graph", &["get"]),
        ("/api/v1/runs/{id}/graph.svg", &["get"]),
        ("/api/v1/runs/{id}/cancel", &["post"]),
        ("/api/v1/runs/{id}/retry", &["post"]),
        ("/api/v1/workflows", &["get"]),
        ("/api/v1/workflows/{name}", &["get"]),
        ("/api/v1/workflows/{name}/graph", &["get"]),
        ("/api/v1/workflows/{name}/graph.svg", &["get"]),
        ("/api/v1/jobs", &["get"]),
        ("/api/v1/schedules", &["get"]),
        ("/api/v1/schedules/{id}", &["get", "put", "delete"]),
        ("/api/v1/schedules/{id}/enable", &["post"]),
        ("/api/v1/schedules/{id}/disable", &["post"]),
        ("/api/v1/schedules/{id}/trigger", &["post"]),
        ("/api/v1/session", &["get", "post", "delete"]),
    ] {
        for m in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} is not in the document"
            );
        }
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    s.stop().await;
}
