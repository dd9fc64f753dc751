//! `log`: leveled lines from the guest, plus its captured stdout and
//! stderr, kept per invocation up to the plugin's `log_bytes`. The lines go
//! to `tracing` (attributed to tenant, plugin and invocation by the
//! caller's span) and into the invocation's report.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use wasmtime::component::HasData;

use crate::bindings::log;

/// A line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal events.
    Info,
    /// Something odd.
    Warn,
    /// A failure.
    Error,
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The `log` import.
    Log,
    /// WASI stdout.
    Stdout,
    /// WASI stderr.
    Stderr,
}

/// One kept line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Level (stdout is `info`, stderr `warn`).
    pub level: Level,
    /// Origin.
    pub source: Source,
    /// Text (lossy UTF-8 for stdio).
    pub message: String,
}

/// The invocation's log: lines kept until the byte budget is spent, then
/// only counted.
#[derive(Debug)]
pub(crate) struct LogBook {
    lines: Vec<LogLine>,
    kept: usize,
    budget: usize,
    pub(crate) dropped_bytes: u64,
}

impl LogBook {
    pub(crate) fn new(budget: usize) -> Arc<Mutex<LogBook>> {
        Arc::new(Mutex::new(LogBook {
            lines: Vec::new(),
            kept: 0,
            budget,
            dropped_bytes: 0,
        }))
    }

    /// Keeps as much of `message` as the budget allows (cut at a char
    /// boundary); returns how many bytes were kept.
    pub(crate) fn push(&mut self, level: Level, source: Source, message: &str) -> usize {
        let room = self.budget.saturating_sub(self.kept);
        let mut take = message.len().min(room);
        while !message.is_char_boundary(take) {
            take -= 1;
        }
        self.dropped_bytes += (message.len() - take) as u64;
        if take > 0 {
            self.kept += take;
            let text = &message[..take];
            match level {
                Level::Error => tracing::error!(target: "dvhost::plugin", ?source, "{text}"),
                Level::Warn => tracing::warn!(target: "dvhost::plugin", ?source, "{text}"),
                Level::Info => tracing::info!(target: "dvhost::plugin", ?source, "{text}"),
                Level::Debug => tracing::debug!(target: "dvhost::plugin", ?source, "{text}"),
                Level::Trace => tracing::trace!(target: "dvhost::plugin", ?source, "{text}"),
            }
            self.lines.push(LogLine {
                level,
                source,
                message: text.to_owned(),
            });
        }
        take
    }

    /// Kept lines from `source`, oldest first.
    pub(crate) fn lines_from(&self, source: Source) -> impl DoubleEndedIterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |l| l.source == source)
            .map(|l| l.message.as_str())
    }

    pub(crate) fn take_lines(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.lines)
    }
}

/// What `log` sees of the invocation.
pub(crate) struct LogView<'a> {
    pub(crate) book: &'a Mutex<LogBook>,
}

/// Selects [`LogView`] for the generated `add_to_linker`.
pub(crate) struct LogData;

impl HasData for LogData {
    type Data<'a> = LogView<'a>;
}

impl log::Host for LogView<'_> {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.book.lock().push(level, Source::Log, &message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_cuts_at_a_char_boundary_and_counts_the_rest() {
        let book = LogBook::new(5);
        let mut b = book.lock();
        assert_eq!(b.push(Level::Info, Source::Log, "abcé"), 5);
        assert_eq!(b.push(Level::Info, Source::Log, "more"), 0);
        assert_eq!(b.dropped_bytes, 4);
        let lines = b.take_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].message, "abcé");
        let book = LogBook::new(4);
        let mut b = book.lock();
        assert_eq!(b.push(Level::Info, Source::Log, "abcé"), 3);
        assert_eq!(b.dropped_bytes, 2);
    }
}
