//! The guest's WASI: nothing by default. No environment variables, no
//! arguments, no stdin, no sockets, no name lookup, no filesystem; clocks and
//! random are allowed. Stdout and stderr go into the invocation's log book
//! (bounded). A per-plugin scratch directory, when granted, is the only
//! filesystem, confined by cap-std to that directory.
//!
//! Components from other toolchains import more of WASI (sockets, cli,
//! filesystem): those imports are linked, so such components load, and
//! their effects fail with WASI errors, never a host panic.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::log::{Level, LogBook, Source};

/// Guest stdout or stderr, written into the log book. Writes never fail:
/// past the budget the bytes are counted and dropped, so a chatty guest is
/// not killed by a failing `println!`.
#[derive(Clone)]
struct Capture {
    book: Arc<Mutex<LogBook>>,
    source: Source,
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let level = match self.source {
            Source::Stderr => Level::Warn,
            _ => Level::Info,
        };
        let text = String::from_utf8_lossy(buf);
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            self.book.lock().push(level, self.source, text);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The guest path of the scratch directory.
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

/// Builds the locked-down context of one invocation.
pub(crate) fn context(
    book: &Arc<Mutex<LogBook>>,
    scratch: Option<&Path>,
) -> std::io::Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(Capture {
            book: book.clone(),
            source: Source::Stdout,
        })
        .stderr(Capture {
            book: book.clone(),
            source: Source::Stderr,
        })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
    if let Some(dir) = scratch {
        builder
            .preopened_dir(dir, SCRATCH_GUEST_PATH, FsPerms::ReadWrite)
            .map_err(|e| {
                std::io::Error::other(format!("the scratch directory cannot be opened: {e}"))
            })?;
    }
    Ok(builder.build())
}
