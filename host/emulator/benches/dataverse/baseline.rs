//! The baseline the emulator's retrieve throughput is compared with: a
//! minimal axum handler answering every request with the bytes and headers
//! of one emulator retrieve, over the same stack (axum-server, rustls with
//! aws-lc-rs, ALPN h2 and http/1.1, a `current_thread` runtime on its own
//! thread, pinned like the emulator).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

/// The answer the baseline gives: status 200, these headers, this body.
#[derive(Clone)]
pub struct Canned {
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// A CA and a certificate for 127.0.0.1 it signed: the server config and
/// the CA's PEM for the client to trust.
fn tls_config() -> (Arc<rustls::ServerConfig>, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    leaf.subject_alt_names
        .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
    let key = KeyPair::generate().expect("server key");
    let cert = leaf.signed_by(&key, &issuer).expect("server certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key DER");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone(), ca_cert.der().clone()], der)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (Arc::new(config), ca_cert.pem())
}

/// Starts the baseline on its own thread (pinned to `pin` if given), over
/// HTTPS when `tls`; returns its `https://127.0.0.1:<port>` URL, its CA
/// PEM and the thread's `schedstat` path.
pub fn start(canned: Canned, pin: Option<usize>, tls: bool) -> (String, String, Option<String>) {
    let (config, ca_pem) = tls_config();
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("address"));
    let mut headers = HeaderMap::new();
    for (k, v) in &canned.headers {
        if let (Ok(k), Ok(v)) = (k.parse::<HeaderName>(), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
    let body = canned.body;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("baseline".into())
        .spawn(move || {
            if let Some(cpu) = pin {
                super::pin_this_thread(cpu);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("baseline runtime");
            rt.block_on(async move {
                let app = axum::Router::new().fallback(move || {
                    let (headers, body) = (headers.clone(), body.clone());
                    async move { (headers, body) }
                });
                tx.send(super::this_thread_schedstat())
                    .expect("bench is waiting");
                let served = if tls {
                    let config = axum_server::tls_rustls::RustlsConfig::from_config(config);
                    axum_server::from_tcp_rustls(listener, config)
                        .serve(app.into_make_service())
                        .await
                } else {
                    axum_server::from_tcp(listener)
                        .serve(app.into_make_service())
                        .await
                };
                served.expect("baseline serves")
            })
        })
        .expect("spawn baseline thread");
    let stat = rx.recv().expect("baseline started");
    (url, ca_pem, stat)
}

/// The emulator's answer to one retrieve, for the baseline to repeat.
pub async fn canned_retrieve(http: &reqwest::Client, api: &str, id: &str) -> Canned {
    let resp = http
        .get(format!("{api}accounts({id})?$select=name"))
        .send()
        .await
        .expect("retrieve");
    assert_eq!(resp.status(), 200);
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "content-length" | "date" | "connection"))
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = resp.bytes().await.expect("body");
    Canned { headers, body }
}
