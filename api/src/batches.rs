//! The queue shared by the API's gathered work (sessions read together,
//! checkout starts written together): whatever waits when a task is free to
//! take it makes one batch, and what is known to be on its way may join it.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::starts_in_flight::StartsInFlight;

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

/// Adds to `batch` what reaches `waiting` while any of those counted
/// `on_their_way` are still counted, for at most `bound` and up to `max`.
/// Each of them is to be queued before it is no longer counted, so none is
/// left behind by the wait's end. Nothing on its way: no wait at all.
pub async fn add_those_on_their_way<T>(
    batch: &mut Vec<T>,
    waiting: &mut mpsc::UnboundedReceiver<T>,
    on_their_way: &StartsInFlight,
    max: usize,
    bound: Duration,
) {
    // One wait for the count, for the whole batch: each start queued while
    // it runs is taken without subscribing to the count again.
    let all_here = on_their_way.at_most_by(0, Instant::now() + bound);
    tokio::pin!(all_here);
    while batch.len() < max {
        tokio::select! {
            biased;
            next = waiting.recv() => match next {
                Some(next) => batch.push(next),
                None => return,
            },
            _ = &mut all_here => break,
        }
    }
    while batch.len() < max {
        match waiting.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
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

    #[tokio::test]
    async fn with_nothing_on_its_way_a_batch_waits_for_nothing() {
        let (queue, mut waiting) = mpsc::unbounded_channel();
        let on_their_way = StartsInFlight::default();
        queue.send(1).unwrap();
        let mut batch = vec![0];
        let began = std::time::Instant::now();
        let bound = Duration::from_secs(30);
        add_those_on_their_way(&mut batch, &mut waiting, &on_their_way, 10, bound).await;
        assert_eq!(batch, vec![0, 1]);
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
    }

    /// Two on their way, each queued a moment apart and then let go of: the
    /// batch takes both and ends with the second, long before its bound.
    #[tokio::test]
    async fn a_batch_takes_those_on_their_way_and_ends_when_the_last_is_queued() {
        let (queue, mut waiting) = mpsc::unbounded_channel();
        let on_their_way = StartsInFlight::default();
        let coming = [on_their_way.enter(), on_their_way.enter()];
        tokio::spawn(async move {
            for (i, counted) in (1..).zip(coming) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                queue.send(i).unwrap();
                drop(counted);
            }
            // The queue stays open: the batch ends on the count, not on it.
            std::future::pending::<()>().await;
        });
        let mut batch = vec![0];
        let began = std::time::Instant::now();
        let bound = Duration::from_secs(30);
        add_those_on_their_way(&mut batch, &mut waiting, &on_their_way, 10, bound).await;
        assert_eq!(batch, vec![0, 1, 2]);
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
    }

    /// One on its way that never comes holds the batch up for its bound
    /// only; a batch never passes its size.
    #[tokio::test]
    async fn a_batch_waits_no_longer_than_its_bound_nor_grows_past_its_size() {
        let (queue, mut waiting) = mpsc::unbounded_channel();
        let on_their_way = StartsInFlight::default();
        let _never = on_their_way.enter();
        let mut batch = vec![0];
        let began = Instant::now();
        let bound = Duration::from_millis(50);
        add_those_on_their_way(&mut batch, &mut waiting, &on_their_way, 10, bound).await;
        assert_eq!(batch, vec![0]);
        assert!(began.elapsed() >= bound, "{:?}", began.elapsed());
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );

        for i in 1..=5 {
            queue.send(i).unwrap();
        }
        let mut batch = vec![0];
        add_those_on_their_way(&mut batch, &mut waiting, &on_their_way, 3, bound).await;
        assert_eq!(batch, vec![0, 1, 2]);
    }
}
