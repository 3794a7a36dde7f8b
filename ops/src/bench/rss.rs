//! Peak memory of a process: `VmHWM` ("high water mark" of the resident set) in
//! `/proc/<pid>/status`. Read it before the process exits.

/// The peak resident set of `pid`, in kibibytes; `None` when it is gone or the
/// kernel does not say.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `12.3 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_high_water_mark() {
        let status =
            "Name:\tboxoffice\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(super::parse_vm_hwm(status), Some(51234));
        assert!(super::peak_rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
