//! The audit writer: handlers hand entries to a task that appends them to
//! the store in order, so an action call does not wait for a database
//! write. The channel is bounded: when the store falls behind, callers wait
//! rather than entries being dropped. Entries waiting together are
//! written in one transaction. [`AuditWriter::flush`] waits until every
//! entry handed over so far is stored (tests, shutdown).

use dvhost_store::{NewAuditEntry, Store};
use tokio::sync::{mpsc, oneshot};

/// Entries waiting to be written before senders wait.
const BACKLOG: usize = 10_000;

enum Message {
    Entry(Box<NewAuditEntry>),
    Flush(oneshot::Sender<()>),
}

/// The sending side; the writer task ends when every sender is gone.
pub(crate) struct AuditWriter {
    tx: mpsc::Sender<Message>,
}

/// Entries written in one transaction at most: a busy server writes its
/// backlog in a few transactions instead of one per call.
const BATCH: usize = 512;

impl AuditWriter {
    pub(crate) fn start(store: Store) -> AuditWriter {
        let (tx, mut rx) = mpsc::channel(BACKLOG);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            let mut flushes = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(message) = next {
                    match message {
                        Message::Entry(entry) => batch.push(*entry),
                        Message::Flush(done) => flushes.push(done),
                    }
                    next = if batch.len() < BATCH {
                        rx.try_recv().ok()
                    } else {
                        None
                    };
                }
                write(&store, &batch).await;
                batch.clear();
                // Everything queued before a flush is written now.
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        });
        AuditWriter { tx }
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
            let _ = wait.await;
        }
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
