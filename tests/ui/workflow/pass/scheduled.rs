use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

#[workflow(cron = "*/5 * * * * *", time_zone = "Europe/Paris")]
fn every_five_seconds() {
    let a = one();
}

#[workflow(cron = "@daily")]
fn daily() {
    let a = one();
}

fn main() {
    let wf = every_five_seconds().unwrap();
    assert_eq!(wf.cron(), Some(("*/5 * * * * *", "Europe/Paris")));
    assert_eq!(EveryFiveSecondsWorkflow::CRON, Some("*/5 * * * * *"));
    assert_eq!(EveryFiveSecondsWorkflow::TIME_ZONE, "Europe/Paris");
    assert_eq!(daily().unwrap().cron(), Some(("@daily", "UTC")));
}
