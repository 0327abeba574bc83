use dagforge::prelude::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct Stats {
    count: u64,
    label: String,
}

// `type_name`: the default job type name, `Stats`, is taken by the output type.
#[job(type_name = StatsJob)]
async fn stats() -> Result<Stats, JobError> {
    Ok(Stats { count: 1, label: "x".into() })
}

#[job]
async fn double(n: u64) -> Result<u64, JobError> {
    Ok(n * 2)
}

#[workflow]
fn flow() {
    let stats = stats();
    let a = double(stats.label);
    let b = double(stats.total);
}

fn main() {}
