//! The queue shared by the API's gathered work (sessions read together,
//! checkout starts written together): whatever waits when a task is free to
//! take it makes one batch.

use tokio::sync::mpsc;

/// The next batch of `waiting`: the first to come (waiting for it), then
/// every other already queued, up to `max`. `None` once every sender is gone.
pub async fn next<T>(waiting: &mut mpsc::UnboundedReceiver<T>, max: usize) -> Option<Vec<T>> {
    let first = waiting.recv().await?;
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
}
