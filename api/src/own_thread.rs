//! Work that must not wait in the API's runtime queue behind a flood's
//! requests runs on a thread of its own, with a single-threaded runtime of
//! its own: the OS shares the cores between it and the requests, and a
//! thread woken from its socket runs soon. The writer of checkout starts and
//! the first steps' provider calls run so.

use std::future::Future;

/// Runs the future `work` makes on a new thread named `name`, with a
/// current-thread runtime of its own (timers and I/O enabled). `work` is
/// called on that thread, so what the future opens (a connection's task) lives
/// there too. An error says that the runtime or the thread could not be had.
pub fn spawn<F, Fut>(name: &str, work: F) -> std::io::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || runtime.block_on(work()))?;
    Ok(())
}
