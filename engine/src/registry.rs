//! Type-erased jobs and the registry that finds them by name.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::bounds;
use crate::context::JobContext;
use crate::error::{Error, ErrorInfo, ErrorKind};
use crate::job::{Job, JobSpec};
use crate::limit::Permit;

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

trait ErasedJob: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn spec(&self) -> JobSpec;
    fn type_id(&self) -> TypeId;
    fn uses(&self) -> &'static [crate::resource::ResourceKey];
    fn call(self: Arc<Self>, ctx: JobContext, input: Value) -> BoxFuture<Result<Value, ErrorInfo>>;
    fn spawn(self: Arc<Self>, attempt: Attempt) -> tokio::task::JoinHandle<()>;
    fn check_input(&self, input: Value) -> Result<(), String>;
}

/// Everything one in-process attempt needs, handed to a spawned task.
pub(crate) struct Attempt {
    pub(crate) ctx: JobContext,
    pub(crate) input: Value,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) permit: Option<Permit>,
}

async fn run_typed<J: Job>(job: &J, ctx: &JobContext, input: Value) -> Result<Value, ErrorInfo> {
    let input: J::Input = decode_input(input).map_err(|e| {
        ErrorInfo::new(
            ErrorKind::Input,
            format!(
                "input does not match the input type of job `{}`: {e}",
                J::NAME
            ),
        )
    })?;
    match job.run(ctx, input).await {
        Ok(out) => encode_output::<J>(out),
        Err(e) => Err(e.to_info()),
    }
}

/// A job's output as JSON, refused (not retried) when nested deeper than
/// [`bounds::MAX_DEPTH`]: encoding, storing and reading it back would recurse as deep.
fn encode_output<J: Job>(out: J::Output) -> Result<Value, ErrorInfo> {
    let too_deep = |e: bounds::TooDeep| {
        ErrorInfo::new(
            ErrorKind::Output,
            format!("the output of job `{}` is {e}", J::NAME),
        )
    };
    // A `Value` output is taken as it is (no copy) and measured without recursion.
    let mut slot = Some(out);
    if let Some(v) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Value>>() {
        return bounds::admit(v.take().unwrap_or_default(), bounds::MAX_DEPTH).map_err(too_deep);
    }
    // `slot` is only emptied by the branch above, which returned.
    let Some(out) = slot else {
        return Ok(Value::Null);
    };
    match bounds::to_value(&out, bounds::MAX_DEPTH) {
        Ok(v) => Ok(v),
        Err(bounds::EncodeError::TooDeep(e)) => {
            // Dropping a typed value this deep may recurse as deep and overflow the
            // stack; its parts cannot be taken out without knowing the type, so it is
            // leaked instead (once per refused attempt, which is not retried).
            #[allow(clippy::mem_forget)] // Leaked on purpose: see above.
            std::mem::forget(out);
            Err(too_deep(e))
        }
        Err(bounds::EncodeError::Json(e)) => Err(ErrorInfo::new(
            ErrorKind::Output,
            format!("output of job `{}` cannot be encoded as JSON: {e}", J::NAME),
        )),
    }
}

struct Erased<J>(J);

impl<J: Job> ErasedJob for Erased<J> {
    fn name(&self) -> &'static str {
        J::NAME
    }

    fn spec(&self) -> JobSpec {
        self.0.spec()
    }

    fn type_id(&self) -> TypeId {
        TypeId::of::<J>()
    }

    fn uses(&self) -> &'static [crate::resource::ResourceKey] {
        J::USES
    }

    fn call(self: Arc<Self>, ctx: JobContext, input: Value) -> BoxFuture<Result<Value, ErrorInfo>> {
        Box::pin(async move { run_typed(&self.0, &ctx, input).await })
    }

    fn check_input(&self, input: Value) -> Result<(), String> {
        decode_input::<J::Input>(input)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn spawn(self: Arc<Self>, a: Attempt) -> tokio::task::JoinHandle<()> {
        let span = tracing::info_span!(
            "node",
            run_id = %a.ctx.run_id(),
            node = a.ctx.node_id(),
            item = a.ctx.item(),
            attempt = a.ctx.attempt(),
        );
        let task = async move {
            let Attempt {
                ctx,
                input,
                timeout,
                permit,
            } = a;
            let outcome = guarded(run_typed(&self.0, &ctx, input), timeout).await;
            drop(permit);
            ctx.report_done(outcome);
        };
        if span.is_disabled() {
            tokio::spawn(task)
        } else {
            tokio::spawn(task.instrument(span))
        }
    }
}

/// Runs an attempt under its timeout and turns a panic into a failed attempt.
pub(crate) async fn guarded(
    fut: impl Future<Output = Result<Value, ErrorInfo>> + Send,
    timeout: Option<std::time::Duration>,
) -> Result<Value, ErrorInfo> {
    let fut = std::panic::AssertUnwindSafe(fut).catch_unwind();
    let caught = match timeout {
        None => fut.await,
        // Boxed so that attempts without a timeout do not carry a timer in their task.
        Some(limit) => match Box::pin(tokio::time::timeout(limit, fut)).await {
            Ok(r) => r,
            Err(_) => Ok(Err(ErrorInfo::new(
                ErrorKind::TimedOut,
                format!("timed out after {limit:?}"),
            ))),
        },
    };
    caught.unwrap_or_else(|panic| {
        Err(ErrorInfo::new(
            ErrorKind::Panicked,
            format!("job panicked: {}", panic_message(&*panic)),
        ))
    })
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// Decodes a node input. A node without any bound input receives `null`; a job whose
/// input is a struct of optional fields then gets an empty object instead.
pub(crate) fn decode_input<T: DeserializeOwned>(input: Value) -> Result<T, serde_json::Error> {
    if input.is_null() {
        match T::deserialize(&Value::Null) {
            Ok(v) => Ok(v),
            Err(e) => T::deserialize(&Value::Object(Default::default())).map_err(|_| e),
        }
    } else {
        T::deserialize(input)
    }
}

/// A job with its types erased: JSON in, JSON out. Cheap to clone.
#[derive(Clone)]
pub struct DynJob(Arc<dyn ErasedJob>);

impl DynJob {
    /// Erases a job's types.
    pub fn new<J: Job>(job: J) -> Self {
        DynJob(Arc::new(Erased(job)))
    }

    /// The job's registered name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Whether `input` decodes as the job's input type (the error says why not),
    /// without running anything (for [`Workflow::check_inputs`](crate::Workflow::check_inputs)).
    pub(crate) fn check_input(&self, input: Value) -> Result<(), String> {
        self.0.check_input(input)
    }

    /// The job's default spec.
    pub fn spec(&self) -> JobSpec {
        self.0.spec()
    }

    /// Runs one attempt with a JSON input and returns its JSON output or the error record.
    pub fn call(
        &self,
        ctx: JobContext,
        input: Value,
    ) -> impl Future<Output = Result<Value, ErrorInfo>> + Send + 'static {
        Arc::clone(&self.0).call(ctx, input)
    }

    pub(crate) fn type_id(&self) -> TypeId {
        self.0.type_id()
    }

    /// The shared resources the job takes ([`Job::USES`]).
    pub fn uses(&self) -> &'static [crate::resource::ResourceKey] {
        self.0.uses()
    }

    /// Spawns one attempt as a tokio task running the job's concrete future (no extra
    /// boxing).
    pub(crate) fn spawn(&self, attempt: Attempt) -> tokio::task::JoinHandle<()> {
        Arc::clone(&self.0).spawn(attempt)
    }
}

impl fmt::Debug for DynJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DynJob").field(&self.name()).finish()
    }
}

/// Job name → job. The worker side of every executor looks jobs up here.
///
/// ```
/// # use dagforge::prelude::*;
/// # use serde_json::json;
/// struct Add;
/// impl Job for Add {
///     type Input = (i64, i64);
///     type Output = i64;
///     const NAME: &'static str = "add";
///     async fn run(&self, _: &JobContext, (a, b): (i64, i64)) -> Result<i64, JobError> { Ok(a + b) }
/// }
///
/// # tokio_test(async {
/// let mut registry = Registry::new();
/// registry.register(Add)?;
/// let out = registry.run("add", JobContext::detached("test"), json!([2, 3])).await?;
/// assert_eq!(out.unwrap(), json!(5));
/// # Ok::<_, dagforge::Error>(())
/// # });
/// # fn tokio_test<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Registry {
    jobs: HashMap<&'static str, DynJob>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a job under its `NAME`. Registering the same job type again replaces
    /// it; a different type under a taken name is an error.
    pub fn register<J: Job>(&mut self, job: J) -> Result<&mut Self, Error> {
        self.insert(DynJob::new(job))?;
        Ok(self)
    }

    pub(crate) fn insert(&mut self, job: DynJob) -> Result<(), Error> {
        if let Some(existing) = self.jobs.get(job.name())
            && existing.type_id() != job.type_id()
        {
            return Err(Error::DuplicateJob(job.name().to_owned()));
        }
        self.jobs.insert(job.name(), job);
        Ok(())
    }

    /// The job registered under `name`.
    pub fn get(&self, name: &str) -> Option<&DynJob> {
        self.jobs.get(name)
    }

    /// Registered job names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.jobs.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Runs the job named `name` once. The outer error says the job is unknown; the
    /// inner result is the attempt's outcome.
    pub async fn run(
        &self,
        name: &str,
        ctx: JobContext,
        input: Value,
    ) -> Result<Result<Value, ErrorInfo>, Error> {
        let job = self
            .get(name)
            .ok_or_else(|| Error::UnknownJob(name.to_owned()))?;
        Ok(job.call(ctx, input).await)
    }
}
