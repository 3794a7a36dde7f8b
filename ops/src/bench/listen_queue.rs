//! Connections the kernel dropped during the sale because a listener's queue
//! of connections to accept was full (`TcpExtListenOverflows` in
//! `/proc/net/netstat`). A dropped connection's client sends its packet again
//! only after a retransmission timeout, so a buyer's start comes 200 ms or
//! more late. The counter is the host's (its network namespace), not one
//! listener's: on a machine that runs the benchmark alone, it is the sale's.

const NETSTAT: &str = "/proc/net/netstat";

/// The host's count of listen-queue overflows so far; `None` where the kernel
/// does not say (no `/proc`, or no such counter).
pub fn overflows() -> Option<u64> {
    overflows_in(&std::fs::read_to_string(NETSTAT).ok()?)
}

/// `ListenOverflows` of the `TcpExt:` pair of lines (names, then values).
fn overflows_in(netstat: &str) -> Option<u64> {
    let mut lines = netstat.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        if let (Some(names), Some(values)) = (
            names.strip_prefix("TcpExt:"),
            values.strip_prefix("TcpExt:"),
        ) {
            let at = names
                .split_whitespace()
                .position(|n| n == "ListenOverflows")?;
            return values.split_whitespace().nth(at)?.parse().ok();
        }
    }
    None
}

/// What the report prints: the overflows between two readings.
pub fn during(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (Some(before), Some(after)) => format!(
            "{} (the host's TcpExtListenOverflows during the sale)",
            after.saturating_sub(before)
        ),
        _ => "n/a (the kernel does not count them here)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops
TcpExt: 26705 29575 111545 111547
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 3
";

    #[test]
    fn the_overflows_are_read_from_the_tcpext_lines() {
        assert_eq!(overflows_in(SAMPLE), Some(111_545));
        assert_eq!(overflows_in("IpExt: ListenOverflows\nIpExt: 7\n"), None);
        assert_eq!(overflows_in("TcpExt: ListenDrops\nTcpExt: 7\n"), None);
    }

    #[test]
    fn this_kernel_counts_them() {
        assert!(overflows().is_some(), "{NETSTAT} has no ListenOverflows");
    }

    #[test]
    fn the_report_prints_what_the_sale_added() {
        assert!(during(Some(10), Some(42)).starts_with("32 "));
        assert!(during(None, Some(42)).starts_with("n/a"));
    }
}
