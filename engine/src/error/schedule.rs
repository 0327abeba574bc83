//! What can be wrong with a schedule.

use std::fmt;

/// One field of a cron expression, as named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CronField {
    /// Seconds (6/7-field expressions only).
    Second,
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Day of the month.
    DayOfMonth,
    /// Month.
    Month,
    /// Day of the week.
    DayOfWeek,
    /// Year (7-field expressions only).
    Year,
}

impl CronField {
    /// The field's name as written in messages: `minute`, `day-of-month`, ….
    pub fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
            Self::Year => "year",
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A schedule that cannot be used, with the culprit named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The expression is empty.
    #[error("the cron expression is empty")]
    Empty,
    /// The expression does not have 5, 6 or 7 fields.
    #[error(
        "cron expression `{expression}` has {found} field(s); expected 5 (minute hour \
         day-of-month month day-of-week), 6 (with seconds first) or 7 (with a year last)"
    )]
    FieldCount {
        /// The expression as given.
        expression: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// An `@…` shortcut that is not one of the known ones.
    #[error(
        "unknown cron shortcut `{0}`; expected @yearly, @annually, @monthly, @weekly, @daily, \
         @midnight or @hourly"
    )]
    UnknownShortcut(String),
    /// One field is malformed or out of range.
    #[error("invalid {field} field: `{token}`: {reason}")]
    InvalidField {
        /// Which field.
        field: CronField,
        /// The offending part of the field (one list element, or the whole field).
        token: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The `cron` crate rejected a 6/7-field expression for a reason not tied to one field.
    #[error("invalid cron expression `{expression}`: {reason}")]
    Invalid {
        /// The expression as given.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// The time zone is not an IANA name known to the bundled database.
    #[error("unknown time zone `{0}` (expected an IANA name such as `Europe/Paris` or `UTC`)")]
    UnknownTimeZone(String),
    /// The expression is valid but names no date that ever occurs (`0 0 30 2 *`).
    #[error("cron expression `{0}` never fires (it names no date that occurs)")]
    NeverFires(String),
}
