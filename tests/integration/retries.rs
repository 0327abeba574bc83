//! Retries, backoff timing (on tokio's paused clock) and timeouts.

use std::time::Duration;

use dagforge::prelude::*;

use crate::common::*;

fn gaps(flaky: &Flaky) -> Vec<Duration> {
    let starts = flaky.starts.lock().unwrap();
    starts.windows(2).map(|w| w[1].3 - w[0].3).collect()
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_timing() {
    let flaky = Flaky {
        fails: 3,
        ..Flaky::default()
    };
    let mut wf = Workflow::builder("backoff");
    wf.add("f", flaky.clone())
        .retries(5)
        .backoff(Backoff::exponential(Duration::from_secs(1)).max_delay(Duration::from_secs(3)));
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success());
    assert_eq!(r.node("f").unwrap().attempts, 4);
    assert_eq!(r.output::<u32>("f").unwrap(), 4);
    assert_eq!(
        gaps(&flaky),
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_bounds() {
    let flaky = Flaky {
        fails: 4,
        ..Flaky::default()
    };
    let mut wf = Workflow::builder("jitter");
    wf.add("f", flaky.clone())
        .retries(4)
        .backoff(Backoff::fixed(Duration::from_secs(10)).jitter(0.5));
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert!(r.is_success());
    for g in gaps(&flaky) {
        assert!(
            g >= Duration::from_secs(5) && g <= Duration::from_secs(10),
            "{g:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn node_override_beats_job_spec() {
    struct Spec3;
    impl Job for Spec3 {
        type Input = ();
        type Output = ();
        const NAME: &'static str = "spec3";
        fn spec(&self) -> JobSpec {
            JobSpec::new().retries(3).backoff(Backoff::none())
        }
        async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
            Err(JobError::msg("nope"))
        }
    }
    let mut wf = Workflow::builder("override");
    wf.add("default", Spec3);
    wf.add("override", Spec3).retries(1);
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(r.node("default").unwrap().attempts, 4);
    assert_eq!(r.node("override").unwrap().attempts, 2);
    assert_eq!(
        r.node("override").unwrap().error.as_ref().unwrap().message,
        "nope"
    );
}

#[tokio::test(start_paused = true)]
async fn terminal_errors_skip_retries() {
    struct Terminal;
    impl Job for Terminal {
        type Input = ();
        type Output = ();
        const NAME: &'static str = "terminal";
        async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
            Err(JobError::terminal("bad config"))
        }
    }
    let mut wf = Workflow::builder("terminal");
    wf.add("t", Terminal).retries(5);
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    let t = r.node("t").unwrap();
    assert_eq!((t.state, t.attempts), (NodeState::Failed, 1));
}

#[tokio::test(start_paused = true)]
async fn timeout_per_attempt_then_timed_out() {
    let started = tokio::time::Instant::now();
    let mut wf = Workflow::builder("timeouts");
    wf.add("slow", Sleep::default())
        .input(60_000)
        .timeout(Duration::from_secs(2))
        .retries(1)
        .backoff(Backoff::fixed(Duration::from_secs(1)));
    wf.add("fast", Sleep::default())
        .input(100)
        .timeout(Duration::from_secs(2));
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    let slow = r.node("slow").unwrap();
    assert_eq!(slow.state, NodeState::TimedOut);
    assert_eq!(slow.attempts, 2);
    assert_eq!(
        slow.error.as_ref().unwrap().kind,
        dagforge::ErrorKind::TimedOut
    );
    assert_eq!(state(&r, "fast"), NodeState::Succeeded);
    assert_eq!(r.state, RunState::Failed);
    // 2 s + 1 s backoff + 2 s, not the 60 s the job wanted.
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn job_spec_timeout_applies_and_can_be_removed() {
    struct Slow;
    impl Job for Slow {
        type Input = ();
        type Output = ();
        const NAME: &'static str = "slow";
        fn spec(&self) -> JobSpec {
            JobSpec::new().timeout(Duration::from_secs(1))
        }
        async fn run(&self, _: &JobContext, _: ()) -> Result<(), JobError> {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        }
    }
    let mut wf = Workflow::builder("spec-timeout");
    wf.add("limited", Slow);
    wf.add("unlimited", Slow).no_timeout();
    let r = Engine::new().run(&wf.build().unwrap(), ()).await.unwrap();
    assert_eq!(state(&r, "limited"), NodeState::TimedOut);
    assert_eq!(state(&r, "unlimited"), NodeState::Succeeded);
}
