//! The audit writer: handlers hand entries to a task that appends them to
//! the store in order, so an action call does not wait for a database
//! write. The channel is bounded: when the store falls behind, callers wait
//! rather than entries being dropped. Entries arriving within a few
//! milliseconds of each other are written in one transaction.
//! [`AuditWriter::flush`] waits until every entry handed over so far is
//! stored (tests, shutdown).

use std::sync::Arc;
use std::time::Duration;

use dvhost_store::{NewAuditEntry, Store};
use tokio::sync::{Notify, mpsc, oneshot};

/// Entries waiting to be written before senders wait.
const BACKLOG: usize = 10_000;

enum Message {
    Entry(Box<NewAuditEntry>),
    Flush(oneshot::Sender<()>),
}

/// The sending side; the writer task ends when every sender is gone.
#[derive(Clone)]
pub(crate) struct AuditWriter {
    tx: mpsc::Sender<Message>,
    /// Cuts the writer's gathering wait short for a flush.
    flushing: Arc<Notify>,
}

/// Entries written in one transaction at most: a busy server writes its
/// backlog in a few transactions instead of one per call.
const BATCH: usize = 512;

/// How long the writer gathers entries after the first one before it
/// writes them: a transaction costs far more than a row, so under load a
/// few milliseconds' wait turns hundreds of transactions into one. The
/// writer does not listen while it waits, so entries handed over then
/// cost the sender no wake-up. An entry is stored at most this much
/// later; [`AuditWriter::flush`] does not wait for it.
const WINDOW: Duration = Duration::from_millis(5);

impl AuditWriter {
    pub(crate) fn start(store: Store) -> AuditWriter {
        let (tx, mut rx) = mpsc::channel(BACKLOG);
        let flushing = Arc::new(Notify::new());
        let woken = flushing.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut flushes = Vec::new();
            while let Some(first) = rx.recv().await {
                take(first, &mut batch, &mut flushes);
                if flushes.is_empty() {
                    tokio::select! {
                        () = tokio::time::sleep(WINDOW) => {}
                        () = woken.notified() => {}
                    }
                }
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(message) => take(message, &mut batch, &mut flushes),
                        Err(_) => break,
                    }
                }
                write(&store, &batch).await;
                batch.clear();
                // Everything queued before a flush is written now.
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        AuditWriter { tx, flushing }
    }

    /// Queues an entry.
    pub(crate) async fn record(&self, entry: NewAuditEntry) {
        if self.tx.send(Message::Entry(Box::new(entry))).await.is_err() {
            tracing::error!("the audit writer has stopped; an entry was not stored");
        }
    }

    /// Waits until everything queued before this call is stored.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            self.flushing.notify_one();
            let _ = wait.await;
        }
    }
}

fn take(message: Message, batch: &mut Vec<NewAuditEntry>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match message {
        Message::Entry(entry) => batch.push(*entry),
        Message::Flush(done) => flushes.push(done),
    }
}

/// Writes a batch in one transaction; if that fails, entry by entry, so
/// one bad entry does not lose the others.
async fn write(store: &Store, batch: &[NewAuditEntry]) {
    if store.append_audit_all(batch).await.is_ok() {
        return;
    }
    for entry in batch {
        if let Err(e) = store.append_audit(entry).await {
            tracing::error!(error = %e, action = %entry.action, "an audit entry could not be stored");
        }
    }
}
