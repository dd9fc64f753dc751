//! Probes of what WASI lets the guest reach: files, environment variables and
//! arguments, TCP sockets and name lookup. Each reports what it got and never
//! panics; the host should deny them all (or, for a granted scratch
//! directory, confine them to it).

use std::net::IpAddr;

use dvhost_sdk::{ActionError, Empty};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use wasip2::io::poll::Pollable;
use wasip2::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket};

use crate::Outcome;

/// Input of `read-file`.
#[derive(Deserialize, JsonSchema)]
pub struct ReadFile {
    /// The file's path.
    path: String,
}

/// Reads a file as text.
pub fn read_file(input: ReadFile) -> Result<Outcome<String>, ActionError> {
    Ok(std::fs::read_to_string(&input.path)
        .map_err(|error| error.to_string())
        .into())
}

/// Input of `write-file`.
#[derive(Deserialize, JsonSchema)]
pub struct WriteFile {
    /// The file's path.
    path: String,
    /// What to write.
    content: String,
}

/// Writes a file.
pub fn write_file(input: WriteFile) -> Result<Outcome<bool>, ActionError> {
    Ok(std::fs::write(&input.path, input.content)
        .map(|()| true)
        .map_err(|error| error.to_string())
        .into())
}

/// Calls that ran before this one in the same instance, counted in a
/// global (and the heap: a string that grows each call).
static CALLS_BEFORE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static TRAIL: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// What `leftovers` found of earlier calls.
#[derive(Serialize, JsonSchema)]
pub struct Leftovers {
    /// Calls that ran in this instance before this one.
    calls_before: u32,
    /// Bytes earlier calls left on the heap.
    trail_bytes: usize,
}

/// Counts the calls that ran in this instance before, and leaves a mark
/// for the next one: a fresh instance per call finds nothing.
pub fn leftovers(_: Empty) -> Result<Leftovers, ActionError> {
    let calls_before = CALLS_BEFORE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut trail = TRAIL.lock().unwrap_or_else(|e| e.into_inner());
    let trail_bytes = trail.len();
    trail.push_str("left by an earlier call;");
    Ok(Leftovers {
        calls_before,
        trail_bytes,
    })
}

/// Output of `env`.
#[derive(Serialize, JsonSchema)]
pub struct Environment {
    /// The environment variables, as `NAME=value`.
    vars: Vec<String>,
    /// The arguments.
    args: Vec<String>,
}

/// Lists the environment variables and arguments.
pub fn env(_: Empty) -> Result<Environment, ActionError> {
    Ok(Environment {
        vars: std::env::vars()
            .map(|(name, value)| format!("{name}={value}"))
            .collect(),
        args: std::env::args().collect(),
    })
}

/// Input of `connect`.
#[derive(Deserialize, JsonSchema)]
pub struct Connect {
    /// An IPv4 or IPv6 address.
    host: String,
    /// The TCP port.
    port: u16,
}

/// Waits on `pollable` while `attempt` answers `would-block`.
fn until_ready<T>(
    pollable: &Pollable,
    mut attempt: impl FnMut() -> Result<T, ErrorCode>,
) -> Result<T, ErrorCode> {
    loop {
        match attempt() {
            Err(ErrorCode::WouldBlock) => pollable.block(),
            other => return other,
        }
    }
}

fn socket_address(address: IpAddr, port: u16) -> (IpAddressFamily, IpSocketAddress) {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let address = Ipv4SocketAddress {
                port,
                address: (a, b, c, d),
            };
            (IpAddressFamily::Ipv4, IpSocketAddress::Ipv4(address))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            let address = Ipv6SocketAddress {
                port,
                flow_info: 0,
                address: (a, b, c, d, e, f, g, h),
                scope_id: 0,
            };
            (IpAddressFamily::Ipv6, IpSocketAddress::Ipv6(address))
        }
    }
}

/// Opens a TCP connection with wasi:sockets.
pub fn connect(input: Connect) -> Result<Outcome<bool>, ActionError> {
    let address: IpAddr = input
        .host
        .parse()
        .map_err(|error| ActionError::invalid_input(format!("host: {error}")))?;
    let (family, remote) = socket_address(address, input.port);
    let attempt = || -> Result<bool, String> {
        let network = instance_network::instance_network();
        let socket = tcp_create_socket::create_tcp_socket(family)
            .map_err(|error| format!("create-tcp-socket: {error}"))?;
        socket
            .start_connect(&network, remote)
            .map_err(|error| format!("start-connect: {error}"))?;
        let pollable = socket.subscribe();
        let _streams = until_ready(&pollable, || socket.finish_connect())
            .map_err(|error| format!("finish-connect: {error}"))?;
        Ok(true)
    };
    Ok(attempt().into())
}

/// Input of `resolve`.
#[derive(Deserialize, JsonSchema)]
pub struct Resolve {
    /// A host name.
    name: String,
}

fn address_text(address: IpAddress) -> String {
    match address {
        IpAddress::Ipv4((a, b, c, d)) => std::net::Ipv4Addr::new(a, b, c, d).to_string(),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
            std::net::Ipv6Addr::new(a, b, c, d, e, f, g, h).to_string()
        }
    }
}

/// Resolves a name with wasi:sockets ip-name-lookup.
pub fn resolve(input: Resolve) -> Result<Outcome<Vec<String>>, ActionError> {
    let attempt = || -> Result<Vec<String>, String> {
        let network = instance_network::instance_network();
        let stream = ip_name_lookup::resolve_addresses(&network, &input.name)
            .map_err(|error| format!("resolve-addresses: {error}"))?;
        let pollable = stream.subscribe();
        let mut addresses = Vec::new();
        while let Some(address) = until_ready(&pollable, || stream.resolve_next_address())
            .map_err(|error| format!("resolve-next-address: {error}"))?
        {
            addresses.push(address_text(address));
        }
        Ok(addresses)
    };
    Ok(attempt().into())
}
