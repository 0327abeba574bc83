//! Error types that convert into `JobError`, no context, no arguments, and serde
//! round trips of the generated input struct.
use dagforge::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

/// Any `std::error::Error` works as the error type.
#[job]
async fn parse(text: String) -> Result<u32, std::num::ParseIntError> {
    text.parse()
}

/// So does `dagforge::Result`.
#[job]
async fn nothing() -> dagforge::Result<Vec<Point>> {
    Ok(vec![Point { x: 1, y: 2 }])
}

/// Arguments can be any owned serde type, with any name.
#[job]
pub(crate) async fn shift(ctx: &dagforge::JobContext, r#type: String, mut p: Point) -> Result<Point, JobError> {
    ctx.info(r#type);
    p.x += 1;
    Ok(p)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ctx = JobContext::detached("t");
    assert_eq!(Parse.run(&ctx, ParseInput { text: "12".into() }).await.unwrap(), 12);
    let err = Parse.run(&ctx, ParseInput { text: "x".into() }).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(Nothing.run(&ctx, NothingInput).await.unwrap(), vec![Point { x: 1, y: 2 }]);

    let input: ShiftInput = serde_json::from_value(serde_json::json!({
        "type": "t", "p": { "x": 1, "y": 1 }
    }))
    .unwrap();
    assert_eq!(Shift.run(&ctx, input).await.unwrap(), Point { x: 2, y: 1 });
    assert_eq!(ShiftInput::TYPE.name(), "type");
    // A job without arguments takes `null`, which is what a node without bindings gets.
    let _: NothingInput = serde_json::from_value(serde_json::Value::Null).unwrap();
}
