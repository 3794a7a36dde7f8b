//! The listening socket of `serve` (and of the payment sandbox beside a
//! benchmark's system, which takes the winners' payments at once). A flash sale opens thousands of
//! connections within milliseconds, faster than one accept loop takes them:
//! the kernel's queue of connections waiting to be accepted must hold the
//! crowd.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel keeps waiting for `serve` to accept them. Past it a
/// connection's last handshake packet (or its SYN) is dropped, and the client
/// sends it again only after its retransmission timeout: 200 ms or more on
/// the same machine, a second for a SYN. `TcpListener::bind` asks for 128
/// (the standard library's figure): in a sale of 2,000 buyers the queue
/// overflowed hundreds of times (`TcpExtListenOverflows`), and those buyers
/// reached the API a retransmission later than the rest. The kernel caps the
/// figure at `net.core.somaxconn` (4096 by default since Linux 5.4).
pub const BACKLOG: u32 = 4096;

/// Binds `addr` and listens with [`BACKLOG`], the address reusable at once
/// after a restart as with `TcpListener::bind`.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::future::join_all;
    use tokio::net::TcpStream;

    use super::*;

    /// Connections opened at once to a listener that accepts none of them:
    /// how many the kernel took (completed within `within`). Every one is
    /// kept open until all are counted.
    async fn taken(listener: &TcpListener, connections: usize, within: Duration) -> usize {
        let addr = listener.local_addr().unwrap();
        let tries =
            (0..connections).map(|_| tokio::time::timeout(within, TcpStream::connect(addr)));
        let opened = join_all(tries).await;
        opened.iter().filter(|c| matches!(c, Ok(Ok(_)))).count()
    }

    #[tokio::test]
    async fn a_crowd_of_connections_waits_to_be_accepted_without_being_dropped() {
        let crowd = 600;
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let taken_here = taken(&listener, crowd, Duration::from_millis(800)).await;
        let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap_or_default();
        assert_eq!(
            taken_here,
            crowd,
            "only {taken_here} of {crowd} connections were taken before any was accepted \
             (the kernel caps the backlog at net.core.somaxconn: {})",
            somaxconn.trim()
        );

        // The default this replaces: the crowd past its 128 waits for
        // retransmissions, and none of them is taken in that time.
        let default = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let taken_by_default = taken(&default, crowd, Duration::from_millis(800)).await;
        assert!(
            taken_by_default < crowd,
            "the default listener took all {crowd} connections: the test shows nothing"
        );
    }
}
