//! Plain-text tables and times for the terminal.

use std::time::{Duration, SystemTime};

/// `text` safe to print on a terminal: control characters (escape sequences, carriage
/// returns, newlines, C1 controls) and the Unicode direction overrides are shown as
/// Rust escapes (`\u{1b}`, `\r`, `\n`), so a job's log line, a node name or an input
/// cannot move the cursor, recolour the terminal or forge another line. The one
/// escaping function: everything the CLI prints that a user or a job wrote goes
/// through it (multi-line text line by line, see [`escape_lines`]).
pub(super) fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Multi-line `text` (an error listing several problems, a table) escaped line by
/// line: the line breaks stay, everything else goes through [`escape`].
pub(super) fn escape_lines(text: &str) -> String {
    text.split('\n').map(escape).collect::<Vec<_>>().join("\n")
}

/// Left-aligned columns two spaces apart; the first row is the header. Cells are
/// [escaped](escape).
pub(super) fn render(rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c).into_owned()).collect())
        .collect();
    let rows = &rows[..];
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = width[c]));
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// `2026-11-29 21:15:52Z` (UTC, to the second).
pub(super) fn time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A short duration: `1.2s`, `340ms`, `2m05s`.
pub(super) fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(time(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_073_352);
        assert_eq!(time(t), "2026-11-30 21:15:52Z");
        // A leap day.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(time(t), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain ünïcode"), "plain ünïcode");
        assert_eq!(escape("\u{1b}[31mred\r\n"), "\\u{1b}[31mred\\r\\n");
        assert_eq!(escape("\u{9b}2J \u{202e}x"), "\\u{9b}2J \\u{202e}x");
        assert_eq!(escape_lines("a\u{7}\nb"), "a\\u{7}\nb");
        let rows = vec![vec!["\u{1b}]0;title\u{7}".to_owned(), "x".to_owned()]];
        assert!(!render(&rows).contains('\u{1b}'));
    }

    proptest::proptest! {
        /// Whatever the text, nothing escaped holds a control character.
        #[test]
        fn escaped_text_has_no_control_character(s in "\\PC*|[\\x00-\\x{9f}]{0,40}") {
            proptest::prop_assert!(!escape(&s).chars().any(char::is_control));
            proptest::prop_assert!(!escape_lines(&s).chars().any(|c| c.is_control() && c != '\n'));
        }
    }

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["a".to_owned(), "bb".to_owned()],
            vec!["ccc".to_owned(), "d".to_owned()],
        ];
        assert_eq!(render(&rows), "a    bb\nccc  d\n");
    }
}
