//! The audit writer: handlers hand entries to a task that appends them to
//! the store in order, so an action call does not wait for a database
//! write. The channel is bounded: when the store falls behind, callers wait
//! rather than entries being dropped. [`AuditWriter::flush`] waits until
//! every entry handed over so far is stored (tests, shutdown).

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

impl AuditWriter {
    pub(crate) fn start(store: Store) -> AuditWriter {
        let (tx, mut rx) = mpsc::channel(BACKLOG);
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                match message {
                    Message::Entry(entry) => {
                        if let Err(e) = store.append_audit(&entry).await {
                            tracing::error!(error = %e, action = %entry.action, "an audit entry could not be stored");
                        }
                    }
                    Message::Flush(done) => {
                        let _ = done.send(());
                    }
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
