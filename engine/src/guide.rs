//! The user guide, from the repository's `docs/guide/`. Every example in it is
//! compiled and run as a doctest.

#[doc = include_str!("../guide/writing-jobs-and-workflows.md")]
pub mod writing_jobs_and_workflows {}

#[doc = include_str!("../guide/building-workflows-from-data.md")]
pub mod building_workflows_from_data {}

#[doc = include_str!("../guide/running-workflows.md")]
pub mod running_workflows {}

#[doc = include_str!("../guide/artifacts.md")]
pub mod artifacts {}

#[doc = include_str!("../guide/stores.md")]
pub mod stores {}

#[doc = include_str!("../guide/scheduling.md")]
pub mod scheduling {}

#[cfg(feature = "cli")]
#[doc = include_str!("../guide/cli.md")]
pub mod cli {}
