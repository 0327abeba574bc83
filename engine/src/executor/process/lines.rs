//! Reading a worker's streams line by line, with a bound on what one line may take.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// One line of a stream: its first bytes (at most the reader's limit, with the line
/// feed if it fit) and how many bytes of it were dropped past that.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) bytes: Vec<u8>,
    pub(crate) dropped: u64,
}

impl Line {
    /// The line's full length.
    pub(crate) fn len(&self) -> u64 {
        self.bytes.len() as u64 + self.dropped
    }
}

/// One stream of the worker, read line by line (bytes, so garbage is no error). A line
/// never takes more than `max` bytes of memory, however long it is: past that, its
/// bytes are counted and dropped.
pub(crate) struct Lines<R> {
    reader: Option<BufReader<R>>,
    buf: Vec<u8>,
    dropped: u64,
    max: usize,
    /// Whether the stream may still have lines.
    pub(crate) open: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    pub(crate) fn new(reader: Option<R>, max: usize) -> Self {
        Lines {
            open: reader.is_some(),
            reader: reader.map(BufReader::new),
            buf: Vec::new(),
            dropped: 0,
            max,
        }
    }

    /// Stops reading (the stream is left to its writer).
    pub(crate) fn close(&mut self) {
        self.open = false;
        self.reader = None;
    }

    /// The next line; `None` at the end (then `open` is false). A last line without a
    /// line feed counts. Cancel-safe: a partial line stays in the buffer.
    pub(crate) async fn next(&mut self) -> Option<Line> {
        let reader = self.reader.as_mut()?;
        loop {
            let chunk = match reader.fill_buf().await {
                Ok(chunk) if !chunk.is_empty() => chunk,
                // The end, or a broken stream: what was read is the last line.
                _ => {
                    self.close();
                    if self.buf.is_empty() && self.dropped == 0 {
                        return None;
                    }
                    return Some(self.take());
                }
            };
            let room = self.max - self.buf.len();
            let (taken, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let kept = taken.min(room);
            self.buf.extend_from_slice(&chunk[..kept]);
            self.dropped += (taken - kept) as u64;
            reader.consume(taken);
            if done {
                return Some(self.take());
            }
        }
    }

    fn take(&mut self) -> Line {
        Line {
            bytes: std::mem::take(&mut self.buf),
            dropped: std::mem::take(&mut self.dropped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bytes: &[u8], dropped: u64) -> Option<Line> {
        Some(Line {
            bytes: bytes.to_vec(),
            dropped,
        })
    }

    #[tokio::test]
    async fn lines_keep_garbage_and_a_last_partial_line_and_cut_long_ones() {
        let mut data = b"one\n\xff two\r\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100_000));
        data.extend(b"\nlast");
        let mut lines = Lines::new(Some(&data[..]), 16);
        assert_eq!(lines.next().await, line(b"one\n", 0));
        assert_eq!(lines.next().await, line(b"\xff two\r\n", 0));
        let long = lines.next().await.unwrap();
        assert_eq!(long.bytes, vec![b'x'; 16]);
        assert_eq!(long.len(), 100_001, "the line feed counts");
        assert!(lines.open);
        assert_eq!(lines.next().await, line(b"last", 0));
        assert!(!lines.open);
        assert_eq!(lines.next().await, None);
        let mut none = Lines::<&[u8]>::new(None, 16);
        assert!(!none.open);
        assert_eq!(none.next().await, None);
    }

    #[tokio::test]
    async fn a_huge_line_without_a_line_feed_takes_bounded_memory() {
        // 64 MiB of one line, read through a reader that produces it lazily.
        let source = tokio::io::repeat(b'y');
        let source = tokio::io::AsyncReadExt::take(source, 64 << 20);
        let mut lines = Lines::new(Some(source), 1024);
        let l = lines.next().await.unwrap();
        assert_eq!(l.bytes.len(), 1024);
        assert_eq!(l.len(), 64 << 20);
        assert!(lines.buf.capacity() <= 2048, "{}", lines.buf.capacity());
        assert_eq!(lines.next().await, None);
    }

    proptest::proptest! {
        #[test]
        fn every_byte_is_kept_or_counted(
            data in proptest::collection::vec(
                proptest::prop_oneof![proptest::prelude::any::<u8>(), proptest::strategy::Just(b'\n')],
                0..2000,
            ),
            max in 1usize..64,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let total: u64 = rt.block_on(async {
                let mut lines = Lines::new(Some(&data[..]), max);
                let mut total = 0;
                while let Some(l) = lines.next().await {
                    proptest::prop_assert!(l.bytes.len() <= max);
                    proptest::prop_assert!(!l.bytes[..l.bytes.len().saturating_sub(1)].contains(&b'\n'));
                    total += l.len();
                }
                Ok(total)
            })?;
            proptest::prop_assert_eq!(total, data.len() as u64);
        }
    }
}
