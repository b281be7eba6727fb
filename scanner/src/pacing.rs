//! A global pace for new connections (`--rate`).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The timer's resolution: tokio sleeps in whole milliseconds.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// Spaces out events to at most `rate` per second, across every task that shares it.
///
/// Each caller reserves the next free slot and sleeps until it. A slot less than a timer tick
/// away is taken at once: sleeping would round up to a whole millisecond and cap the rate near
/// 1000/s. Slots lag at most two ticks behind the clock: enough to make up for wake-ups that
/// the timer rounds late, while an idle period builds no credit for a larger burst.
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
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let slot = (*next).max(now.checked_sub(2 * TIMER_TICK).unwrap_or(now));
            *next = slot + self.interval;
            slot
        };
        if slot > Instant::now() + TIMER_TICK {
            tokio::time::sleep_until(slot).await;
        }
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
    async fn rates_above_the_timer_resolution_are_kept_on_average() {
        let pacer = Pacer::new(Some(20_000.0));
        let start = Instant::now();
        for _ in 0..2000 {
            pacer.wait().await;
        }
        // 2000 slots at 50 µs end at 99.95 ms; the last ones are taken up to a tick early.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(98) && elapsed <= Duration::from_millis(100),
            "{elapsed:?}"
        );
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
