//! Free loopback ports.

use std::net::TcpListener;

/// A port on 127.0.0.1 that nothing listens on right now. The OS picks it, so it
/// is never a well-known port of a system service.
pub fn free_loopback_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
