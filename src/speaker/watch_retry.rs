//! Watch retries that end when the API server is known to be back.
//!
//! The shared watch backoff grows to 3 s (`crate::watch_backoff`). After an API outage each
//! watch therefore waits out the rest of its current backoff, up to 3 s, even when our lease
//! renewal has already gone through. The lease watch is half of what "healthy" means, so that
//! wait was the speaker's recovery time (measured 0.7-2.9 s after the API returned). Here the
//! backoff sleep also ends when the speaker sees a renewal succeed after failures: proof that
//! the API server answers again, so every watch retries at once.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::utils::Backoff;
use tokio::sync::watch;

use crate::watch_backoff::WatchBackoff;

/// Tells the watches the API server answers again.
#[derive(Debug, Clone)]
pub struct ApiBack(watch::Sender<u64>);

impl ApiBack {
    /// A signal no watch has heard yet.
    pub fn new() -> Self {
        ApiBack(watch::channel(0).0)
    }

    /// The API server answered after failures: every watch backing off retries now.
    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

impl Default for ApiBack {
    fn default() -> Self {
        Self::new()
    }
}

/// Waits `delay`, or less if the API comes back meanwhile.
async fn back_off(delay: Duration, api_back: &mut watch::Receiver<u64>) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        changed = api_back.changed() => {
            // A closed signal means no one will kick us: sleep the rest normally.
            if changed.is_err() {
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// `stream` with the watch backoff after each error, cut short by `api_back`.
pub fn with_retry<S, T, E>(stream: S, api_back: &ApiBack) -> impl Stream<Item = Result<T, E>>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    let mut kick = api_back.subscribe();
    // Only kicks from now on count.
    kick.borrow_and_update();
    futures::stream::unfold(
        (stream, WatchBackoff::default(), kick, None::<Duration>),
        |(mut stream, mut backoff, mut kick, pending)| async move {
            if let Some(delay) = pending {
                back_off(delay, &mut kick).await;
            } else {
                // A kick that came while the watch was working is old news.
                kick.borrow_and_update();
            }
            let item = stream.next().await?;
            let pending = if item.is_err() {
                backoff.next()
            } else {
                backoff.reset();
                None
            };
            Some((item, (stream, backoff, kick, pending)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    /// A watch that keeps failing retries as soon as the API is reported back, instead of
    /// after its backoff; and a kick, once used, does not skip later backoffs.
    #[tokio::test]
    async fn a_kick_ends_the_backoff_early() {
        let api_back = ApiBack::new();
        let failing = futures::stream::repeat_with(|| Err::<(), &str>("refused"));
        let mut s = Box::pin(with_retry(failing, &api_back));
        assert!(matches!(s.next().await, Some(Err(_))));
        // Backing off now (at least 100 ms): polled at once, nothing comes.
        assert!(futures::poll!(s.next()).is_pending());
        api_back.notify();
        assert!(matches!(
            futures::poll!(s.next()),
            Poll::Ready(Some(Err(_)))
        ));
        assert!(futures::poll!(s.next()).is_pending());
    }
}
