//! openraft's async runtime: tokio, with a random source that a simulation can seed.
//!
//! openraft draws election timeouts from [`AsyncRuntime::thread_rng`]. Production seeds each
//! thread's generator from the OS; [`seed_randomness`] replaces the current thread's generator
//! with a seeded one, so a single-threaded simulation draws the same timeouts on every run.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::TokioOneShotSender;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static GENERATOR: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes this thread's random source (election timeouts included) a generator seeded with `seed`.
pub fn seed_randomness(seed: u64) {
    GENERATOR.with(|g| *g.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

fn with_generator<T>(draw: impl FnOnce(&mut StdRng) -> T) -> T {
    GENERATOR.with(|g| draw(g.borrow_mut().get_or_insert_with(StdRng::from_entropy)))
}

/// A handle on this thread's random source.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeededRng;

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        with_generator(|g| g.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        with_generator(|g| g.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        with_generator(|g| g.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        with_generator(|g| g.try_fill_bytes(dest))
    }
}

/// tokio, as openraft's `TokioRuntime`, with [`SeededRng`] as the random source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PembaRuntime;

impl AsyncRuntime for PembaRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = SeededRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::task::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        SeededRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (TokioOneShotSender(tx), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_seeded_thread_draws_the_same_numbers_every_time() {
        let draw = || {
            (0..8)
                .map(|_| SeededRng.gen_range(150..300))
                .collect::<Vec<u64>>()
        };
        seed_randomness(7);
        let first = draw();
        seed_randomness(7);
        assert_eq!(draw(), first);
        seed_randomness(8);
        assert_ne!(draw(), first);
    }
}
