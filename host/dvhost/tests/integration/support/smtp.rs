//! A local SMTP server for the tests of the flows that e-mail an
//! administrator: it accepts every message and keeps its raw bytes.

use std::sync::{Arc, Mutex};

/// The messages a local SMTP server received, each as its raw bytes.
#[derive(Clone, Default)]
pub struct Inbox(pub Arc<Mutex<Vec<Vec<u8>>>>);

impl Inbox {
    /// The one message received, parsed, after checking it went to `to`;
    /// fails the test unless exactly one arrived.
    pub fn only_message_to(&self, to: &str) -> mail_parser::Message<'static> {
        let messages = self.0.lock().unwrap().clone();
        assert_eq!(messages.len(), 1, "one e-mail");
        let parsed = mail_parser::MessageParser::default()
            .parse(&messages[0])
            .expect("the e-mail parses")
            .into_owned();
        assert_eq!(parsed.to().unwrap().first().unwrap().address(), Some(to));
        parsed
    }
}

impl mailin_embedded::Handler for Inbox {
    fn data_start(&mut self, _: &str, _: &str, _: bool, _: &[String]) -> mailin_embedded::Response {
        self.0.lock().unwrap().push(Vec::new());
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(last) = self.0.lock().unwrap().last_mut() {
            last.extend_from_slice(buf);
        }
        Ok(())
    }
}

/// Starts an SMTP server on a free local port (it runs until the test
/// process ends); returns its port and inbox.
pub fn smtp_server() -> (u16, Inbox) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Inbox::default();
    let mut server = mailin_embedded::Server::new(inbox.clone());
    server.with_name("smtp.test").with_tcp_listener(listener);
    std::thread::spawn(move || {
        // The error is not Send; the test notices a dead server by its inbox.
        let _ = server.serve();
    });
    (port, inbox)
}
