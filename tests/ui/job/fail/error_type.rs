use dagforge::prelude::*;

struct NotAnError;

#[job]
async fn fails() -> Result<(), NotAnError> {
    Err(NotAnError)
}

fn main() {}
