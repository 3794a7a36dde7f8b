//! Free loopback ports.

use std::net::TcpListener;

/// A port on 127.0.0.1 that nothing listens on right now. The OS picks it, so it
/// is never a well-known port of a system service.
pub fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Like [`free_loopback_port`], never one of `avoid`: ports the caller has
/// promised to someone else (e.g. the API's address, chosen before the services
/// start, which the OS could otherwise hand out again).
pub fn free_loopback_port_except(avoid: &[u16]) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let port = free_loopback_port()?;
        if !avoid.contains(&port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port outside {avoid:?} after 100 tries")
}
