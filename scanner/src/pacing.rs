//! A global pace for new connections (`--rate`).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces out events to at most `rate` per second, across every task that shares it.
///
/// Each caller reserves the next free slot and sleeps until it. Slots are never granted in the
/// past, so an idle period does not build up credit for a burst.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    /// A pacer allowing `rate` events per second (`None` or 0: unlimited).
    pub fn new(rate: Option<f64>) -> Pacer {
        let interval = match rate {
            Some(r) if r > 0.0 => Duration::from_secs_f64(1.0 / r),
            _ => Duration::ZERO,
        };
        Pacer {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for the next slot.
    pub async fn wait(&self) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            // A poisoned lock only means another task panicked mid-update; the instant is valid.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_by_the_interval() {
        let pacer = Pacer::new(Some(100.0));
        let start = Instant::now();
        for _ in 0..10 {
            pacer.wait().await;
        }
        // Ten slots at 10 ms: the first is immediate, the tenth at 90 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(90));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let pacer = Pacer::new(None);
        let start = Instant::now();
        for _ in 0..1000 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
