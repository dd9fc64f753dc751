//! Who may use the control API: loopback callers, or callers presenting
//! the control token when the emulator has one.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use dvhost_emulator::{CONTROL_TOKEN_HEADER, EmulatorBuilder, RunningEmulator};

/// This machine's address on its default route, when it has one that is
/// not loopback (no packet is sent: connecting a UDP socket only picks the
/// source address).
fn outward_ip() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

async fn start(token: Option<&str>) -> RunningEmulator {
    EmulatorBuilder::new()
        .listen(SocketAddr::from(([0, 0, 0, 0], 0)))
        .control_token(token.map(str::to_string))
        .start()
        .await
        .unwrap()
}

/// Status of `GET <host>:<port>/_emulator/<path>` with optional headers.
async fn status(host: IpAddr, emu: &RunningEmulator, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = reqwest::Client::new().get(format!(
        "http://{}/_emulator/{path}",
        SocketAddr::new(host, emu.local_addr().port())
    ));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn without_a_token_only_loopback_callers_are_served() {
    let Some(ip) = outward_ip() else {
        eprintln!("skipped: this machine has no non-loopback address to call from");
        return;
    };
    let emu = start(None).await;
    let lo: IpAddr = [127, 0, 0, 1].into();
    assert_eq!(status(lo, &emu, "state", &[]).await, 200);
    assert_eq!(status(ip, &emu, "state", &[]).await, 403);
    assert_eq!(status(ip, &emu, "device-codes", &[]).await, 403);
    // Health stays open so scripts can wait for the emulator.
    assert_eq!(status(ip, &emu, "health", &[]).await, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn with_a_token_every_caller_presents_it() {
    let emu = start(Some("s3cret")).await;
    let lo: IpAddr = [127, 0, 0, 1].into();
    assert_eq!(status(lo, &emu, "state", &[]).await, 403);
    assert_eq!(
        status(lo, &emu, "state", &[("authorization", "Bearer nope")]).await,
        403
    );
    assert_eq!(
        status(lo, &emu, "state", &[("authorization", "Bearer s3cret")]).await,
        200
    );
    if let Some(ip) = outward_ip() {
        assert_eq!(
            status(ip, &emu, "state", &[(CONTROL_TOKEN_HEADER, "s3cret")]).await,
            200
        );
        assert_eq!(status(ip, &emu, "state", &[]).await, 403);
    }
    emu.shutdown().await;
}
