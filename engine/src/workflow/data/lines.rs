//! Where each node and edge of a JSON workflow starts: one pass over the text, before
//! it is parsed, that also counts them (so that too many are refused before they are
//! all decoded).
//!
//! The scan follows only the structure (strings, brackets, braces) of the top-level
//! object's `nodes` and `edges` arrays; it never fails and never recurses. On text that
//! is not JSON its counts are meaningless, and the parser reports the syntax error.

/// The line (1-based) on which each element of `nodes` and `edges` starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lines {
    pub(crate) nodes: Vec<usize>,
    pub(crate) edges: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Top,
    Nodes,
    Edges,
    Other,
}

/// More elements than allowed in `nodes` or `edges`: which, and how many were seen.
pub(crate) struct TooMany {
    pub(crate) what: &'static str,
    pub(crate) seen: usize,
}

/// Scans `text`, stopping as soon as `nodes` has more than `max_nodes` elements or
/// `edges` more than `max_edges`.
pub(crate) fn scan(text: &str, max_nodes: usize, max_edges: usize) -> Result<Lines, TooMany> {
    let b = text.as_bytes();
    let mut lines = Lines::default();
    let mut stack: Vec<Tag> = Vec::new();
    let mut line = 1;
    let mut key = Tag::Other; // what the top-level key being read names
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if matches!(c, b' ' | b'\t' | b'\r' | b',' | b':') {
            if c == b',' && stack.last() == Some(&Tag::Top) {
                expect_key = true;
            }
            i += 1;
            continue;
        }
        if matches!(c, b'}' | b']') {
            stack.pop();
            i += 1;
            continue;
        }
        // A value (or a key) starts here.
        if stack.len() == 2 && stack[0] == Tag::Top {
            let list = match stack[1] {
                Tag::Nodes => Some((&mut lines.nodes, max_nodes, "nodes")),
                Tag::Edges => Some((&mut lines.edges, max_edges, "edges")),
                _ => None,
            };
            if let Some((list, max, what)) = list {
                list.push(line);
                if list.len() > max {
                    return Err(TooMany {
                        what,
                        seen: list.len(),
                    });
                }
            }
        }
        match c {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if expect_key && stack.len() == 1 {
                    key = match b.get(start..i.min(b.len())) {
                        Some(b"nodes") => Tag::Nodes,
                        Some(b"edges") => Tag::Edges,
                        _ => Tag::Other,
                    };
                    expect_key = false;
                }
                i += 1;
            }
            b'{' | b'[' => {
                let tag = match (stack.len(), c) {
                    (0, b'{') => Tag::Top,
                    (1, b'[') if stack[0] == Tag::Top => key,
                    _ => Tag::Other,
                };
                expect_key = tag == Tag::Top;
                stack.push(tag);
                i += 1;
            }
            _ => {
                // A number, `true`, `false`, `null` (or garbage): up to a delimiter.
                while i < b.len() && !matches!(b[i], b',' | b']' | b'}' | b'\n' | b' ') {
                    i += 1;
                }
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_nodes_and_edges() {
        let text = "{\n  \"name\": \"x\",\n  \"nodes\": [\n    {\"id\": \"a\", \"job\": \"j\", \"input\": {\"nodes\": [1, 2]}},\n\n    {\"id\": \"b\\\"]\", \"job\": \"j\"}\n  ],\n  \"edges\": [{\"from\": \"a\", \"to\": \"b\"}, {\"from\": \"a\", \"to\": \"c\"}]\n}";
        let l = scan(text, 10, 10).ok().unwrap();
        assert_eq!(l.nodes, vec![4, 6]);
        assert_eq!(l.edges, vec![8, 8]);
        let too_many = scan(text, 1, 10).err().unwrap();
        assert_eq!((too_many.what, too_many.seen), ("nodes", 2));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "",
            "{",
            "]]]",
            "{\"nodes\": [\"\\",
            "{\"nodes\": [1, {",
            "\"",
            "[{}]",
        ] {
            let _ = scan(text, 5, 5);
        }
    }
}
