//! Jobs defined in one module and imported into another; `for` fan-out over a
//! parameter; ids overridden; constants of several kinds.
mod jobs {
    use dagforge::prelude::*;

    #[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    pub enum Mode {
        Fast,
        Slow,
    }

    #[job(name = "greet")]
    pub async fn greet(name: String, punctuation: String, mode: Mode) -> Result<String, JobError> {
        let _ = mode;
        Ok(format!("hello {name}{punctuation}"))
    }

    /// `type_name` renames the job type; the workflow still calls the function.
    #[job(type_name = Joiner)]
    pub async fn join(parts: Vec<String>, sep: Option<String>) -> Result<String, JobError> {
        Ok(parts.join(sep.as_deref().unwrap_or(" ")))
    }
}

mod flows {
    use super::jobs::{self, Mode, greet};
    use dagforge::workflow;

    #[workflow]
    pub fn greetings(names: Vec<String>) {
        let hello = for n in names { greet(n, "!", Mode::Fast) }.id("say-hello");
        jobs::join(&hello, Some(", ".to_owned()))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), dagforge::Error> {
    let wf = flows::greetings()?;
    assert_eq!(wf.node_ids().collect::<Vec<_>>(), ["say-hello", "join"]);
    assert_eq!(flows::GreetingsWorkflow::CRON, None);
    assert_eq!(flows::GreetingsWorkflow::VERSION, "1");
    let result = dagforge::Engine::new()
        .run(&wf, serde_json::json!({ "names": ["ann", "bob"] }))
        .await?;
    assert_eq!(result.output::<String>("join")?, "hello ann!, hello bob!");
    let _ = jobs::Mode::Slow;
    assert_eq!(<jobs::Joiner as dagforge::Job>::NAME, "join");
    let _input = jobs::JoinerInput { parts: vec![], sep: None };
    Ok(())
}
