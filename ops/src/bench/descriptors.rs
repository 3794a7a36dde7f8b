//! How many file descriptors each Boxoffice process holds at most during the
//! sale: nearly all of them sockets (a connection per buyer in flight, plus
//! the pools' connections to Postgres and Redis), so the peak resident set
//! beside it can be read per connection. An HTTP/1 connection costs the API
//! about 19 KB once it has served a request (hyper's read and write buffers),
//! whatever the request was (README, "Where a 10,000-buyer sale's memory
//! goes").
//!
//! Counted from `/proc/<pid>/fd` every [`EVERY`]: listing the directory is a
//! few system calls even at 10,000 entries, where resolving each link would
//! be one per descriptor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

const EVERY: Duration = Duration::from_millis(100);

/// The descriptors `pid` holds now; `None` when it is gone.
pub fn open_descriptors(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A sampler of the processes' descriptors, from [`Peaks::start`] until
/// [`Peaks::finish`].
pub struct Peaks {
    running: Arc<AtomicBool>,
    task: JoinHandle<Vec<(String, Option<usize>)>>,
}

impl Peaks {
    /// Starts sampling `(role, pid)` of each process.
    pub fn start(processes: Vec<(String, u32)>) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let sampling = running.clone();
        let task = tokio::spawn(async move {
            let mut peaks: Vec<(String, Option<usize>)> = processes
                .iter()
                .map(|(role, _)| (role.clone(), None))
                .collect();
            loop {
                for ((_, pid), (_, peak)) in processes.iter().zip(peaks.iter_mut()) {
                    if let Some(now) = open_descriptors(*pid) {
                        *peak = Some(peak.map_or(now, |p| p.max(now)));
                    }
                }
                if !sampling.load(Ordering::Relaxed) {
                    return peaks;
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Peaks { running, task }
    }

    /// Stops sampling (after one last sample) and returns each process's
    /// peak.
    pub async fn finish(self) -> Vec<(String, Option<usize>)> {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_opened_is_one_more_descriptor() {
        let pid = std::process::id();
        let before = open_descriptors(pid).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(open_descriptors(pid), Some(before + 1));
        drop(listener);
        assert_eq!(open_descriptors(pid), Some(before));
    }

    #[tokio::test]
    async fn the_peak_is_the_most_held_while_sampling() {
        let pid = std::process::id();
        let peaks = Peaks::start(vec![("this".into(), pid)]);
        let listeners: Vec<_> = (0..20)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        tokio::time::sleep(EVERY * 3).await;
        let held = open_descriptors(pid).unwrap();
        drop(listeners);
        tokio::time::sleep(EVERY * 3).await;
        let peaks = peaks.finish().await;
        assert_eq!(peaks.len(), 1);
        assert!(peaks[0].1.unwrap() >= held, "{peaks:?}, held {held}");
        assert!(open_descriptors(pid).unwrap() + 20 <= peaks[0].1.unwrap());
    }
}
