use dagforge::prelude::*;

#[job]
async fn one() -> Result<u64, JobError> {
    Ok(1)
}

// The cron expression must be a string literal.
#[workflow(cron = 5)]
fn not_a_string() {
    let a = one();
}

// Five to seven fields, or an @-shortcut.
#[workflow(cron = "0 3 * *")]
fn too_few_fields() {
    let a = one();
}

#[workflow(cron = "@fortnightly")]
fn unknown_shortcut() {
    let a = one();
}

// A time zone is an IANA name, and goes with a schedule.
#[workflow(cron = "0 3 * * *", time_zone = "Paris time")]
fn bad_zone() {
    let a = one();
}

#[workflow(time_zone = "Europe/Paris")]
fn zone_without_cron() {
    let a = one();
}

fn main() {}
