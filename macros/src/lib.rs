//! Procedural macros for [dagforge](https://docs.rs/dagforge): `#[job]` and `#[workflow]`.
//!
//! Use them through the `dagforge` crate, which re-exports them; this crate is an
//! implementation detail and its version always matches `dagforge`'s. The code they
//! generate only names `::dagforge::…` paths, so a user crate needs no other dependency;
//! a crate that re-exports dagforge under another name passes that path with
//! `crate = …` (see [`job`](macro@job)).
//!
//! Each macro is split into `parse` (syn), `validate` (every error at once, with spans)
//! and `expand` (quote).

#![warn(missing_docs)]

use proc_macro::TokenStream;

mod crate_path;
mod diag;
mod job;
mod naming;
mod value;
mod workflow;

/// Turns an `async fn` into a typed job.
///
/// ```
/// use dagforge::prelude::*;
///
/// /// Integrates one market.
/// #[job(retries = 3, backoff = exponential(1s, max = 1m), timeout = "5m")]
/// async fn integrate(ctx: &JobContext, market: String, dataset_ref: String) -> Result<u32, JobError> {
///     ctx.info(format!("integrating {market} from {dataset_ref}"));
///     Ok(market.len() as u32)
/// }
///
/// // The function stays an ordinary async fn…
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), JobError> {
/// let n = integrate(&JobContext::detached("test"), "de".into(), "ref".into()).await?;
/// assert_eq!(n, 2);
/// // …and `Integrate` is the job, `IntegrateInput` its input.
/// assert_eq!(<Integrate as Job>::NAME, "integrate");
/// assert_eq!(Integrate.spec().retries, 3);
/// let _field: Field<IntegrateInput, String> = IntegrateInput::MARKET;
/// # Ok(()) }
/// ```
///
/// # The function
///
/// `async fn name(ctx: &JobContext, a: A, b: B, …) -> Result<T, E>`:
///
/// - the context argument is optional and, when present, comes first;
/// - every other argument is `name: Type` with an owned serde type (it is decoded from
///   JSON): no references, no patterns, no `impl Trait`, no generics;
/// - the return type is `Result<T, E>` (any path ending in `Result`, so aliases such as
///   `dagforge::Result<T>` work) where `E` converts into [`JobError`]: `JobError` itself
///   or any `std::error::Error + Send + Sync + 'static`.
///
/// The function is left as it is, so tests can call it directly with
/// `JobContext::detached("name")`.
///
/// # What is generated
///
/// For `async fn fetch_markets(…)` (the names follow the function, in PascalCase):
///
/// | item | what it is |
/// |---|---|
/// | `struct FetchMarkets;` | the job: a unit struct implementing `Job` (`wf.add("id", FetchMarkets)`) |
/// | `struct FetchMarketsInput { a: A, … }` | `Job::Input`, a serde struct with one field per argument (a unit struct when there are none) |
/// | `FetchMarketsInput::A: Field<FetchMarketsInput, A>` | one typed field name per argument, upper-cased, for `Node::bind`, `set` and `each` |
/// | `type fetch_markets = FetchMarkets;` | hidden; it lets `#[workflow]` find the job from the function's path, through the same imports |
///
/// All of them get the function's visibility. `Job::Output` is `T` and `Job::NAME`
/// the function's name. If `FetchMarkets` clashes with one of your types, pick another
/// name with `type_name` (below); `#[workflow]` still finds the job through the function.
///
/// # Attributes
///
/// | attribute | example | effect |
/// |---|---|---|
/// | `name` | `name = "data-proxy"` | `Job::NAME` (default: the function's name) |
/// | `type_name` | `type_name = StatsJob` | the generated job type's name (default: the function's name in PascalCase); the input becomes `StatsJobInput`. Use it when the default clashes with one of your types, e.g. `fn stats() -> Result<Stats, _>` |
/// | `retries` | `retries = 3` | extra attempts after a failure |
/// | `backoff` | `backoff = fixed(500ms)`, `backoff = exponential(1s, max = 1m, factor = 3, jitter = 0.2)`, `backoff = none` | delay between attempts; `factor` ≥ 1 (exponential only), `jitter` in 0.0–1.0 |
/// | `timeout` | `timeout = "30s"` | per-attempt time limit |
/// | `priority` | `priority = -5` | higher runs first when capacity is short |
/// | `queue` | `queue = "gpu"` | the queue (lane) the job runs in |
/// | `resources` | `resources(cpu = "500m", memory = "256Mi", cpu_limit = "1", memory_limit = "1Gi")` | Kubernetes requests and limits |
/// | `crate` | `crate = my_facade::dagforge`, `crate = "my_facade::dagforge"` | the path the generated code names dagforge by (default `::dagforge`); see below |
///
/// Durations are a number and a unit (`ms`, `s`, `m`, `h`, `d`), quoted or not
/// (`"30s"`, `30s`, `"1m30s"`, `1.5s`). Quantities are checked at compile time
/// (`"500m"`, `"2"`, `"256Mi"`, `"1Gi"`, `"1e3"`). `retries` and `priority` also take
/// a constant. Every mistake is a compile error pointing at it.
///
/// # Re-exporting dagforge
///
/// The generated code names the crate `::dagforge`. A crate that re-exports dagforge
/// (a facade or framework crate whose users do not depend on `dagforge` themselves)
/// gives the path to its re-export with `crate`, as a path or a string, on `#[job]` and
/// `#[workflow]` alike; the path must resolve where the macro is used, so an absolute
/// one (`::my_facade::dagforge`, `crate::…`) is safest. `$crate` cannot be used.
///
/// ```
/// mod facade {
///     pub use dagforge as forge;
/// }
/// use facade::forge::{JobError, job, workflow};
///
/// #[job(crate = crate::facade::forge, retries = 2)]
/// async fn hello(name: String) -> Result<String, JobError> {
///     Ok(format!("hello {name}"))
/// }
///
/// #[workflow(crate = "crate::facade::forge")]
/// fn greet(name: String) {
///     let hello = hello(name);
/// }
///
/// # fn main() {
/// assert_eq!(greet().unwrap().node_ids().collect::<Vec<_>>(), ["hello"]);
/// # }
/// ```
///
/// [`JobError`]: https://docs.rs/dagforge/latest/dagforge/struct.JobError.html
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(attr.into(), item.into()).into()
}

/// Turns a function whose body calls `#[job]` functions into a workflow definition.
///
/// ```
/// use dagforge::prelude::*;
///
/// #[job]
/// async fn numbers(limit: u64) -> Result<Vec<u64>, JobError> { Ok((1..=limit).collect()) }
/// #[job]
/// async fn square(n: u64) -> Result<u64, JobError> { Ok(n * n) }
/// #[job]
/// async fn total(squares: Vec<u64>) -> Result<u64, JobError> { Ok(squares.iter().sum()) }
///
/// #[workflow(name = "squares", version = "2")]
/// fn squares(limit: u64) {
///     let numbers = numbers(limit);
///     let squared = for n in numbers { square(n) }.concurrency(4);
///     let total = total(squared).retries(2);
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dagforge::Error> {
/// let wf = squares()?;
/// let result = Engine::new().run(&wf, serde_json::json!({ "limit": 3 })).await?;
/// assert_eq!(result.output::<u64>("total")?, 14);
/// assert_eq!(SquaresWorkflow::VERSION, "2");
/// # Ok(())
/// # }
/// ```
///
/// # The function
///
/// The body is a list of statements, each a job call:
///
/// - `let name = job(args…);` adds a node with id `name` (override with `.id("…")`);
///   a bare `job(args…);` (or a final expression) adds a node named after the job
///   function;
/// - the function's parameters (`name: Type`) become run parameters
///   (`WorkflowBuilder::param`), supplied as a JSON object when the run starts.
///
/// The function then takes no arguments and returns
/// `Result<Workflow, ValidationErrors>`. A unit struct `<Name>Workflow` (e.g.
/// `SquaresWorkflow` for `fn squares`) is generated next to it, with the constants
/// `NAME`, `VERSION`, `CRON` and `PARAMS` and a `build()` function.
///
/// # Arguments of a job call
///
/// Pass the job function's arguments without the context, in order:
///
/// | argument | meaning | builder call |
/// |---|---|---|
/// | `data` (an earlier binding) | the whole output of `data`: a data edge | `bind(field, data)` |
/// | `data.dataset_ref` (or `data.a.b`) | a field of `data`'s output | `bind(field, data.field(…))` |
/// | `limit` (a parameter) | the run parameter | `bind(field, param)` |
/// | `3`, `"eu"`, `LIMIT`, `Region::Eu`, `vec![1, 2]` | a constant | `set(field, value)` |
/// | `m` in `for m in items { … }` | the fan-out item | `each(field, items)` |
///
/// `&x` is the same as `x`. The types are checked by the typed builder: passing a
/// `Vec<u64>` output to a `String` argument, or reading a field the output does not
/// have, is a compile error on that argument.
///
/// # Fan-out
///
/// `for m in markets { integrate(m, data) }` or `markets.map(|m| integrate(m, data))`
/// runs the job once per item; `markets` is an earlier binding whose output is a
/// `Vec`, a `Vec` field of one (`markets.ids`), or a `Vec` parameter. The node's output
/// is the `Vec` of the items' outputs, in order.
///
/// # Node options
///
/// Chained after the call (or after the fan-out):
///
/// | option | effect |
/// |---|---|
/// | `.id("data-proxy")` | node id other than the binding's name |
/// | `.after(a, b)` | order-only dependencies on earlier bindings |
/// | `.when("$.count > 0")` | run only if the JSONPath predicate holds over the output of the node's one upstream node (otherwise Skipped) |
/// | `.when(node, "$.failed > 0")` | the same over `node`'s output |
/// | `.when_all("$.a.n > $.b.n")` | the same over an object of all upstream outputs keyed by node id |
/// | `.trigger(all_done)` | trigger rule: `all_success`, `all_done`, `one_failed`, `none_failed` (or a `TriggerRule` expression) |
/// | `.retries(2)` | overrides the job's retries |
/// | `.backoff(fixed(1s))` | overrides the job's backoff (same syntax as in `#[job]`) |
/// | `.timeout("1m")` | overrides the job's timeout |
/// | `.priority(5)` | overrides the job's priority |
/// | `.concurrency(3)` | caps how many items of a fan-out run at once |
///
/// # Attributes
///
/// | attribute | example | effect |
/// |---|---|---|
/// | `name` | `name = "catalog-integration"` | the workflow's name (default: the function's name) |
/// | `version` | `version = "2"` | the workflow's version (default `"1"`) |
/// | `cron` | `cron = "0 3 * * *"` | a recurring schedule (5–7 fields or `@daily`-style), in `<Name>Workflow::CRON` and on the built workflow (`Workflow::cron()`); an engine serving a store registers it as the schedule named after the workflow |
/// | `time_zone` | `time_zone = "Europe/Paris"` | the IANA time zone of `cron` (default `UTC`), in `<Name>Workflow::TIME_ZONE` |
/// | `crate` | `crate = my_facade::dagforge`, `crate = "my_facade::dagforge"` | the path the generated code names dagforge by (default `::dagforge`), for a crate that re-exports dagforge; see [`job`](macro@job) |
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    workflow::expand(attr.into(), item.into()).into()
}
