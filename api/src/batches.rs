//! The queue shared by the API's gathered work (sessions read together,
//! checkout starts written together): whatever waits when a task is free to
//! take it makes one batch.

use tokio::sync::mpsc;

/// The next batch of `waiting`: the first to come (waiting for it), then
/// every other already queued, up to `max`. `None` once every sender is gone.
///
/// Before it takes the others, the task lets the scheduler run once more
/// what is ready: requests woken together (by a read they all waited for,
/// or arriving on one connection) are then queued in this batch rather than
/// the next, where they would wait for this one to be written. No timer: it
/// costs one turn of the scheduler, not a delay.
pub async fn next<T>(waiting: &mut mpsc::UnboundedReceiver<T>, max: usize) -> Option<Vec<T>> {
    let first = waiting.recv().await?;
    tokio::task::yield_now().await;
    let mut batch = vec![first];
    while batch.len() < max {
        match waiting.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_its_size() {
        let (queue, mut waiting) = mpsc::unbounded_channel();
        for i in 0..5 {
            queue.send(i).unwrap();
        }
        assert_eq!(next(&mut waiting, 3).await, Some(vec![0, 1, 2]));
        assert_eq!(next(&mut waiting, 3).await, Some(vec![3, 4]));
        drop(queue);
        assert_eq!(next(&mut waiting, 3).await, None);
    }

    /// Five requests wait for one read (as a flood's first starts wait for
    /// the sale's terms); the reader queues its own item first, then lets
    /// them go. The batch task, woken first, still takes all six.
    #[tokio::test(flavor = "current_thread")]
    async fn the_tasks_woken_with_the_first_are_in_its_batch() {
        let (queue, mut waiting) = mpsc::unbounded_channel();
        let read = std::sync::Arc::new(tokio::sync::RwLock::new(()));
        let reading = read.clone().write_owned().await;
        for i in 1..=5 {
            let (queue, read) = (queue.clone(), read.clone());
            tokio::spawn(async move {
                drop(read.read().await);
                queue.send(i).unwrap();
            });
        }
        let batch = tokio::spawn(async move { next(&mut waiting, 10).await });
        // Everyone waits: the five for the read, the batch for its first.
        tokio::task::yield_now().await;
        queue.send(0).unwrap();
        drop(reading);
        assert_eq!(batch.await.unwrap(), Some(vec![0, 1, 2, 3, 4, 5]));
    }
}
