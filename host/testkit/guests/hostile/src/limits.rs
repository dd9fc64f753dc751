//! Actions that attack the resource limits: time, memory, stack, output and
//! log size, and a panic in the middle of a call.

use std::hint::black_box;

use dvhost_sdk::{ActionError, Empty};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One line of a flood, at most.
const LINE: usize = 1024;

/// Loops until the host stops it.
pub fn spin(_: Value) -> Result<Empty, ActionError> {
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

/// How long `busy` works.
#[derive(Deserialize, JsonSchema)]
pub struct Busy {
    /// Milliseconds, at most 60,000.
    #[schemars(range(max = 60_000))]
    pub ms: u64,
}

/// What `busy` did.
#[derive(Serialize, JsonSchema)]
pub struct BusyDone {
    /// Milliseconds it worked.
    pub ms: u64,
}

/// Spins on the clock for `ms` milliseconds, then answers.
pub fn busy(input: Busy) -> Result<BusyDone, ActionError> {
    let start = std::time::Instant::now();
    let mut turns: u64 = 0;
    while start.elapsed().as_millis() < u128::from(input.ms) {
        turns = black_box(turns.wrapping_add(1));
    }
    Ok(BusyDone { ms: input.ms })
}

/// Allocates 1 MiB chunks and writes to every page of each, keeping them
/// all, until the host stops it.
pub fn grow_memory(_: Value) -> Result<Empty, ActionError> {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.resize(CHUNK, 0xa5_u8);
        chunks.push(black_box(chunk));
    }
}

/// Recurses until `depth` reaches `limit`, which in practice it never does.
///
/// The frames must live on WebAssembly's own call stack, so that the
/// recursion meets the engine's stack limit: no local has its address taken
/// (which would put it on the shadow stack in linear memory, a different
/// failure). Using the result after the call keeps the recursion from
/// becoming a loop.
#[inline(never)]
fn descend(depth: u64, limit: u64) -> u64 {
    if depth == limit {
        return depth;
    }
    descend(depth + 1, limit).wrapping_mul(31) ^ depth
}

/// Recurses until the stack runs out.
pub fn recurse(_: Value) -> Result<u64, ActionError> {
    // The compiler cannot see the limit, so it cannot cut the recursion.
    Ok(descend(0, black_box(u64::MAX)))
}

/// Input of `huge-output`, `log-flood` and `print-flood`.
#[derive(Deserialize, JsonSchema)]
pub struct Size {
    /// How many bytes.
    bytes: usize,
}

/// A JSON string of `bytes` bytes plus its two quotes.
pub fn huge_output(input: Size) -> Result<String, ActionError> {
    Ok("x".repeat(input.bytes))
}

/// Panics mid-call.
pub fn panic(_: Value) -> Result<Empty, ActionError> {
    panic!("hostile guest panicked on purpose");
}

/// How many bytes a flood wrote.
#[derive(Serialize, JsonSchema)]
pub struct Written {
    /// Bytes written.
    written: usize,
}

/// The lengths of the lines that make up `bytes` bytes.
fn lines(bytes: usize) -> impl Iterator<Item = usize> {
    (0..bytes.div_ceil(LINE)).map(move |line| LINE.min(bytes - line * LINE))
}

/// Writes `bytes` bytes through the log import.
pub fn log_flood(input: Size) -> Result<Written, ActionError> {
    let line = "l".repeat(LINE);
    for length in lines(input.bytes) {
        dvhost_sdk::log::info(&line[..length]);
    }
    Ok(Written {
        written: input.bytes,
    })
}

/// Writes `bytes` bytes to stdout, each line ending in its newline.
pub fn print_flood(input: Size) -> Result<Written, ActionError> {
    let line = "p".repeat(LINE);
    for length in lines(input.bytes) {
        println!("{}", &line[..length - 1]);
    }
    Ok(Written {
        written: input.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_lines_add_up() {
        assert_eq!(lines(0).count(), 0);
        assert_eq!(lines(1).collect::<Vec<_>>(), [1]);
        assert_eq!(lines(2050).collect::<Vec<_>>(), [1024, 1024, 2]);
        assert_eq!(lines(3 * LINE).sum::<usize>(), 3 * LINE);
    }

    #[test]
    fn descend_stops_at_its_limit() {
        // 3, then 3 * 31 ^ 2, then 95 * 31 ^ 1, then 2944 * 31 ^ 0.
        assert_eq!(descend(0, 3), 91_264);
    }

    #[test]
    fn huge_output_is_the_size_asked() {
        let json = serde_json::to_string(&huge_output(Size { bytes: 1000 }).unwrap()).unwrap();
        assert_eq!(json.len(), 1002);
    }
}
