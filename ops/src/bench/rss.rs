//! Peak memory of a process: `VmHWM` ("high water mark" of the resident set) in
//! `/proc/<pid>/status`. Read it before the process exits. Also prints the
//! report's memory lines.

use super::report::line;

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

/// The report's memory lines: each process's peak RSS, and beside it the
/// most descriptors it held during the sale (`super::descriptors`).
pub fn print(peak_rss: &[(String, Option<u64>)], peak_descriptors: &[(String, Option<usize>)]) {
    if peak_rss.is_empty() {
        line("peak RSS:", "n/a (--target: not our processes)");
        return;
    }
    let total: u64 = peak_rss.iter().filter_map(|(_, k)| *k).sum();
    line(
        "peak RSS:",
        format!("{} (total {})", by_role(peak_rss, |k| mib(*k)), mib(total)),
    );
    line(
        "open descriptors, most:",
        by_role(peak_descriptors, ToString::to_string),
    );
}

/// `serve 12, work n/a`.
fn by_role<T>(each: &[(String, Option<T>)], show: impl Fn(&T) -> String) -> String {
    each.iter()
        .map(|(role, value)| {
            format!(
                "{role} {}",
                value.as_ref().map_or_else(|| "n/a".into(), &show)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
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
