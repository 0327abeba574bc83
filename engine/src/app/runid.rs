//! Run ids as a user types them: a whole id, a unique prefix of one (as git takes
//! commit ids), `@latest` (the newest run) or `@latest:WORKFLOW` (the newest run of a
//! workflow). Every command that takes a run id reads it through [`resolve`].

use super::error::CliError;
use crate::RunId;
use crate::store::{RunQuery, Store};

/// How many runs an ambiguous prefix names in its message.
const SHOWN_CANDIDATES: usize = 5;

/// The run `text` names in `store` (at `url`, for messages).
///
/// Errors: a usage error (exit code 2) for text that is no id, prefix or `@latest`, and
/// for a prefix several runs share (naming some of them); [`crate::Error::RunNotFound`]
/// (exit code 2) when no run matches; a store error.
pub(crate) async fn resolve(store: &dyn Store, url: &str, text: &str) -> Result<RunId, CliError> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("@latest") {
        let mut query = RunQuery::new().limit(1);
        let workflow = match rest.strip_prefix(':') {
            Some(w) if !w.is_empty() => Some(w),
            None if rest.is_empty() => None,
            _ => {
                return Err(CliError::usage(format!(
                    "`{t}` is not a run id: expected a run id, a unique prefix of one, \
                     @latest or @latest:WORKFLOW"
                )));
            }
        };
        if let Some(w) = workflow {
            query = query.workflow(w);
        }
        let page = store
            .list_runs(&query)
            .await
            .map_err(|e| CliError::store(url, e))?;
        return page.items.first().map(|r| r.id).ok_or_else(|| {
            CliError::usage(match workflow {
                Some(w) => format!("@latest:{w}: the store holds no run of workflow `{w}`"),
                None => "@latest: the store holds no run".to_owned(),
            })
        });
    }
    if let Ok(id) = t.parse::<RunId>() {
        return Ok(id);
    }
    if t.is_empty() || t.len() > 36 || !t.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(CliError::usage(format!(
            "`{t}` is not a run id: expected a run id (a UUID), a unique prefix of one, \
             @latest or @latest:WORKFLOW"
        )));
    }
    let page = store
        .list_runs(
            &RunQuery::new()
                .id_prefix(t.to_ascii_lowercase())
                .limit(SHOWN_CANDIDATES + 1),
        )
        .await
        .map_err(|e| CliError::store(url, e))?;
    match page.items.as_slice() {
        [] => Err(CliError::usage(format!("no run id starts with `{t}`"))),
        [one] => Ok(one.id),
        many => {
            let shown: Vec<String> = many
                .iter()
                .take(SHOWN_CANDIDATES)
                .map(|r| format!("{} ({})", r.id, r.workflow))
                .collect();
            let more = if many.len() > SHOWN_CANDIDATES {
                ", …"
            } else {
                ""
            };
            Err(CliError::usage(format!(
                "run id prefix `{t}` is ambiguous: {}{more}; give more of the id",
                shown.join(", ")
            )))
        }
    }
}
