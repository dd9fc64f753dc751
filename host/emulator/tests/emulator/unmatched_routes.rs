//! Requests no route takes: Dataverse's OData 404 under an environment's
//! API base, a JSON 404 elsewhere, and over HTTP/2 an answer (not a stream
//! reset) even when the request has a large body.

use crate::common::*;
use reqwest::Method;
use serde_json::Value;

/// Status and JSON body of a request with an optional body.
async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e:?}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{url}: not JSON: {text:?}"));
    (status, json)
}

#[tokio::test]
async fn unknown_segments_under_the_api_base_are_dataverse_404s() {
    let w = World::start().await;
    let t = w.dv_token().await;
    let path_form = format!("{}/contoso-dev", w.emu.base_url());
    for base in [w.env_url.as_str(), path_form.as_str()] {
        for (rest, segment) in [
            ("api/data/v9.2/nosuchset", "nosuchset"),
            ("api/data/v9.9/accounts", "v9.9"),
            ("api/nosuch", "nosuch"),
            ("api/data", "data"),
        ] {
            let url = format!("{base}/{rest}");
            let (s, b) = call(&w.http, Method::GET, &url, Some(&t), None).await;
            assert_eq!(s, 404, "{url}: {b}");
            assert_eq!(b["error"]["code"], "0x80060888", "{url}: {b}");
            assert_eq!(
                b["error"]["message"],
                format!("Resource not found for the segment '{segment}'."),
                "{url}"
            );
        }
    }
}

#[tokio::test]
async fn other_unmatched_paths_get_a_json_404() {
    let w = World::start().await;
    for url in [
        w.url("/nope"),
        w.url("/"),
        w.url(&format!("/{TENANT_ID}/oauth2/v2.0/nope")),
        format!("{}/nope", w.env_url),
    ] {
        let (s, b) = call(&w.http, Method::GET, &url, None, None).await;
        assert_eq!(s, 404, "{url}");
        assert!(b["error"]["message"].is_string(), "{url}: {b}");
    }
}

#[tokio::test]
async fn http2_posts_to_unmatched_routes_are_answered() {
    let cert = TestCert::generate("h2");
    let emu = tls_emulator_with_app(&cert, true).await;
    let http = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_pem(
            emu.ca_certificate_pem().unwrap().as_bytes(),
        )
        .unwrap()])
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let env_url = emu.environment_url("contoso-dev").unwrap();
    let body = vec![b'x'; 1024 * 1024];
    for url in [
        format!("{}/nope/at/all", emu.base_url()),
        format!("{env_url}/not-the-api"),
        format!("{}/_emulator/nope", emu.base_url()),
    ] {
        for _ in 0..3 {
            let (s, b) = call(&http, Method::POST, &url, None, Some(body.clone())).await;
            assert_eq!(s, 404, "{url}: {b}");
        }
    }
    emu.shutdown().await;
}
