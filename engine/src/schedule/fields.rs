//! Parsing one cron field into the set of values it selects, with errors that name the field.

use std::collections::BTreeSet;

use super::{CronField, ScheduleError};

const MONTHS: &[(&str, u32)] = &[
    ("jan", 1),
    ("january", 1),
    ("feb", 2),
    ("february", 2),
    ("mar", 3),
    ("march", 3),
    ("apr", 4),
    ("april", 4),
    ("may", 5),
    ("jun", 6),
    ("june", 6),
    ("jul", 7),
    ("july", 7),
    ("aug", 8),
    ("august", 8),
    ("sep", 9),
    ("september", 9),
    ("oct", 10),
    ("october", 10),
    ("nov", 11),
    ("november", 11),
    ("dec", 12),
    ("december", 12),
];

/// Day names numbered from Sunday = 0 (POSIX); the Quartz flavour adds one.
const DAYS: &[(&str, u32)] = &[
    ("sun", 0),
    ("sunday", 0),
    ("mon", 1),
    ("monday", 1),
    ("tue", 2),
    ("tues", 2),
    ("tuesday", 2),
    ("wed", 3),
    ("wednesday", 3),
    ("thu", 4),
    ("thurs", 4),
    ("thursday", 4),
    ("fri", 5),
    ("friday", 5),
    ("sat", 6),
    ("saturday", 6),
];

/// How one field is written: its range, its names, and whether `?` is allowed.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldSpec {
    pub(super) field: CronField,
    pub(super) min: u32,
    pub(super) max: u32,
    /// Names and the values they stand for (before `name_offset`).
    names: &'static [(&'static str, u32)],
    /// Added to a name's value (1 for Quartz days of week, numbered from Sunday = 1).
    name_offset: u32,
    /// Quartz's "no specific value" marker, accepted in the day fields of 6/7-field expressions.
    question_mark: bool,
}

impl FieldSpec {
    const fn plain(field: CronField, min: u32, max: u32) -> Self {
        Self {
            field,
            min,
            max,
            names: &[],
            name_offset: 0,
            question_mark: false,
        }
    }
}

/// The five POSIX fields; day of week is 0–7 with both 0 and 7 meaning Sunday.
pub(super) const POSIX: [FieldSpec; 5] = [
    FieldSpec::plain(CronField::Minute, 0, 59),
    FieldSpec::plain(CronField::Hour, 0, 23),
    FieldSpec::plain(CronField::DayOfMonth, 1, 31),
    FieldSpec {
        names: MONTHS,
        ..FieldSpec::plain(CronField::Month, 1, 12)
    },
    FieldSpec {
        names: DAYS,
        ..FieldSpec::plain(CronField::DayOfWeek, 0, 7)
    },
];

/// The seven fields of the `cron` crate (Quartz flavour): days of week 1–7 from Sunday.
pub(super) const QUARTZ: [FieldSpec; 7] = [
    FieldSpec::plain(CronField::Second, 0, 59),
    FieldSpec::plain(CronField::Minute, 0, 59),
    FieldSpec::plain(CronField::Hour, 0, 23),
    FieldSpec {
        question_mark: true,
        ..FieldSpec::plain(CronField::DayOfMonth, 1, 31)
    },
    FieldSpec {
        names: MONTHS,
        ..FieldSpec::plain(CronField::Month, 1, 12)
    },
    FieldSpec {
        names: DAYS,
        name_offset: 1,
        question_mark: true,
        ..FieldSpec::plain(CronField::DayOfWeek, 1, 7)
    },
    FieldSpec::plain(CronField::Year, 1970, 2100),
];

/// A parsed field: the values it selects, and whether it was written starting with `*`
/// (which matters for the POSIX day-of-month / day-of-week rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldSet {
    pub(super) values: BTreeSet<u32>,
    pub(super) star: bool,
}

/// Parses one field (a comma-separated list of `*`, `n`, `a-b`, with an optional `/step`).
pub(super) fn parse_field(spec: &FieldSpec, text: &str) -> Result<FieldSet, ScheduleError> {
    let mut values = BTreeSet::new();
    let star = text.starts_with('*') || (spec.question_mark && text.starts_with('?'));
    if text.is_empty() {
        return Err(invalid(spec, text, "the field is empty"));
    }
    for element in text.split(',') {
        values.extend(parse_element(spec, element)?);
    }
    Ok(FieldSet { values, star })
}

fn parse_element(spec: &FieldSpec, element: &str) -> Result<Vec<u32>, ScheduleError> {
    if element.is_empty() {
        return Err(invalid(spec, element, "empty list element"));
    }
    let (base, step) = match element.split_once('/') {
        Some((base, step)) => {
            let step: u32 = step
                .parse()
                .map_err(|_| invalid(spec, element, "the step after `/` is not a number"))?;
            if step == 0 {
                return Err(invalid(spec, element, "the step must be at least 1"));
            }
            (base, Some(step))
        }
        None => (element, None),
    };
    let (start, end) = if base == "*" || (spec.question_mark && base == "?") {
        if base == "?" && step.is_some() {
            return Err(invalid(spec, element, "`?` takes no step"));
        }
        (spec.min, spec.max)
    } else if let Some((a, b)) = base.split_once('-') {
        let a = value(spec, element, a)?;
        let b = value(spec, element, b)?;
        if a > b {
            if spec.field == CronField::DayOfWeek {
                return Ok(wrapped_weekdays(spec, a, b, step));
            }
            return Err(invalid(
                spec,
                element,
                format!(
                    "the range starts after it ends ({a} > {b}); only day-of-week ranges \
                     wrap around, write `{a}-{max},{min}-{b}`",
                    min = spec.min,
                    max = spec.max
                ),
            ));
        }
        (a, b)
    } else {
        let a = value(spec, element, base)?;
        // `a/n` means from `a` to the end of the range, every `n`.
        (a, if step.is_some() { spec.max } else { a })
    };
    let step = step.unwrap_or(1) as usize;
    Ok((start..=end).step_by(step).collect())
}

/// A day-of-week range that wraps past the end of the week (`FRI-MON`, `SAT-SUN`): from `a`
/// to the last day of the week, then from the first to `b`, every `step` days along the way.
/// The week has seven days whatever the numbering: POSIX `0`–`6` (`7` is `0` again), Quartz
/// `1`–`7`.
fn wrapped_weekdays(spec: &FieldSpec, a: u32, b: u32, step: Option<u32>) -> Vec<u32> {
    let (first, last) = if spec.min == 0 { (0, 6) } else { (1, 7) };
    (a..=last)
        .chain(first..=b)
        .step_by(step.unwrap_or(1) as usize)
        .collect()
}

fn value(spec: &FieldSpec, element: &str, token: &str) -> Result<u32, ScheduleError> {
    let v = if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
        token
            .parse::<u32>()
            .map_err(|_| invalid(spec, element, format!("`{token}` is too large")))?
    } else if let Some(&(_, v)) = spec
        .names
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(token))
    {
        v + spec.name_offset
    } else if spec.names.is_empty() {
        return Err(invalid(spec, element, format!("`{token}` is not a number")));
    } else {
        return Err(invalid(
            spec,
            element,
            format!("`{token}` is neither a number nor a {} name", spec.field),
        ));
    };
    if v < spec.min || v > spec.max {
        return Err(invalid(
            spec,
            element,
            format!("{v} is out of range {}-{}", spec.min, spec.max),
        ));
    }
    Ok(v)
}

fn invalid(spec: &FieldSpec, token: &str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::InvalidField {
        field: spec.field,
        token: token.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(spec: &FieldSpec, text: &str) -> Vec<u32> {
        parse_field(spec, text)
            .unwrap()
            .values
            .into_iter()
            .collect()
    }

    #[test]
    fn elements() {
        let [min, _, dom, month, dow] = &POSIX;
        assert_eq!(set(min, "*/15"), [0, 15, 30, 45]);
        assert_eq!(set(min, "10-20/5,59"), [10, 15, 20, 59]);
        assert_eq!(set(min, "50/4"), [50, 54, 58]);
        assert_eq!(set(dom, "*/10"), [1, 11, 21, 31]);
        assert_eq!(set(month, "jan-MAR,Dec"), [1, 2, 3, 12]);
        assert_eq!(set(dow, "MON-FRI"), [1, 2, 3, 4, 5]);
        assert_eq!(set(dow, "5-7"), [5, 6, 7]);
        assert_eq!(set(&QUARTZ[5], "MON-FRI"), [2, 3, 4, 5, 6]);
        // Day-of-week ranges wrap past the end of the week.
        assert_eq!(set(dow, "SAT-SUN"), [0, 6]);
        assert_eq!(set(dow, "FRI-MON"), [0, 1, 5, 6]);
        assert_eq!(set(dow, "FRI-SUN,MON"), [0, 1, 5, 6]);
        assert_eq!(set(dow, "7-1"), [0, 1]);
        assert_eq!(set(dow, "FRI-MON/2"), [0, 5]);
        assert_eq!(set(&QUARTZ[5], "FRI-MON"), [1, 2, 6, 7]);
        assert_eq!(set(&QUARTZ[5], "SAT-SUN"), [1, 7]);
        assert!(parse_field(dow, "*").unwrap().star);
        assert!(parse_field(dom, "*/2").unwrap().star);
        assert!(!parse_field(dom, "1-31").unwrap().star);
    }

    #[test]
    fn errors_name_the_field_and_token() {
        let [min, hour, dom, month, dow] = &POSIX;
        let cases = [
            (min, "60", CronField::Minute, "60"),
            (hour, "1,,2", CronField::Hour, ""),
            (dom, "0", CronField::DayOfMonth, "0"),
            (month, "FOO", CronField::Month, "FOO"),
            (hour, "22-2", CronField::Hour, "22-2"),
            (dow, "8", CronField::DayOfWeek, "8"),
            (min, "*/0", CronField::Minute, "*/0"),
            (min, "a", CronField::Minute, "a"),
            (dom, "?", CronField::DayOfMonth, "?"),
        ];
        for (spec, text, field, token) in cases {
            match parse_field(spec, text) {
                Err(ScheduleError::InvalidField {
                    field: f, token: t, ..
                }) => assert_eq!((f, t.as_str()), (field, token), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
