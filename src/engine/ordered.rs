//! Jobs run on every thread of the engine's pool, their results handed to one consumer in
//! job order. There is no barrier between groups of jobs: a thread that finishes early takes
//! the next job instead of waiting for the slowest of its group, and whichever thread
//! completes the oldest job hands over the results that are then due. At most `window`
//! jobs are in flight (taken but not yet consumed), which bounds the memory their results
//! hold.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

/// Runs `job` over `items` on every thread of the current rayon pool and hands each
/// result to `consume` in item order. Stops taking jobs at the first error (of a job, in
/// item order, or of `consume`) and returns it; a panic in a job stops the others and goes
/// on to the caller.
///
/// Every thread of the pool runs the line, and a thread finding the window full blocks
/// until it moves on (the oldest job's thread never blocks), so the line must not be
/// started from inside a job of the same pool: the engine starts it only through
/// `pool::run` from a caller's thread.
pub(crate) fn run_ordered<I: Sync, C: Send>(
    items: &[I],
    window: usize,
    job: impl Fn(&I) -> Result<C> + Sync,
    consume: &mut (dyn FnMut(C) -> Result<()> + Send),
) -> Result<()> {
    let line = Line {
        items,
        window: window.max(1),
        job,
        consume: Mutex::new(consume),
        state: Mutex::new(State {
            next_job: 0,
            next_out: 0,
            done: BTreeMap::new(),
            consuming: false,
            stopped: false,
            failed: None,
        }),
        moved: Condvar::new(),
    };
    rayon::broadcast(|_| line.work());
    let state = line.state.into_inner().unwrap_or_else(PoisonError::into_inner);
    state.failed.map_or(Ok(()), Err)
}

struct Line<'a, I, J, C> {
    items: &'a [I],
    window: usize,
    job: J,
    consume: Mutex<&'a mut (dyn FnMut(C) -> Result<()> + Send)>,
    state: Mutex<State<C>>,
    /// Signalled when the window moves on or the line stops.
    moved: Condvar,
}

struct State<C> {
    /// The next item no thread has taken.
    next_job: usize,
    /// The next item whose result is due to the consumer.
    next_out: usize,
    /// Results of finished jobs not consumed yet.
    done: BTreeMap<usize, Result<C>>,
    /// Whether a thread is handing results to the consumer.
    consuming: bool,
    /// Whether no more jobs are taken (after an error or a panic).
    stopped: bool,
    /// The first error.
    failed: Option<Error>,
}

impl<I: Sync, J: Fn(&I) -> Result<C> + Sync, C: Send> Line<'_, I, J, C> {
    /// One thread's part: take jobs until there are none left or the line stops.
    fn work(&self) {
        let _stop_on_panic = StopOnPanic(self);
        while let Some(i) = self.take() {
            let result = (self.job)(&self.items[i]);
            self.finish(i, result);
        }
    }

    /// The next item to run, waiting while the window is full; `None` when all are taken
    /// or the line has stopped.
    fn take(&self) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if state.stopped || state.next_job == self.items.len() {
                return None;
            }
            if state.next_job < state.next_out + self.window {
                state.next_job += 1;
                return Some(state.next_job - 1);
            }
            state = self.moved.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Records item `i`'s result and, unless another thread is at it, hands every result
    /// now due to the consumer (outside the state lock, so other threads go on meanwhile).
    fn finish(&self, i: usize, result: Result<C>) {
        let mut state = self.lock();
        state.done.insert(i, result);
        if state.consuming {
            return;
        }
        state.consuming = true;
        while !state.stopped {
            let due = state.next_out;
            let Some(result) = state.done.remove(&due) else { break };
            drop(state);
            let consumed =
                result.and_then(|chunk| (self.consume.lock().unwrap_or_else(PoisonError::into_inner))(chunk));
            state = self.lock();
            state.next_out += 1;
            if let Err(error) = consumed {
                state.stopped = true;
                state.failed = Some(error);
            }
            self.moved.notify_all();
        }
        state.consuming = false;
    }

    fn lock(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stops the line when a job panics, so no thread waits for the window to move for ever.
struct StopOnPanic<'l, 'a, I, J, C>(&'l Line<'a, I, J, C>);

impl<I, J, C> Drop for StopOnPanic<'_, '_, I, J, C> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.stopped = true;
            self.0.moved.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool")
    }

    #[test]
    fn results_reach_the_consumer_in_item_order_whatever_order_jobs_finish_in() {
        let items: Vec<u64> = (0..200).collect();
        for (threads, window) in [(1, 1), (2, 1), (2, 3), (4, 8)] {
            let mut seen = Vec::new();
            pool(threads)
                .install(|| {
                    run_ordered(
                        &items,
                        window,
                        |&i| {
                            // Later items are often quicker, so they finish out of order.
                            std::thread::sleep(std::time::Duration::from_micros((200 - i) % 7 * 50));
                            Ok(i * 10)
                        },
                        &mut |value| {
                            seen.push(value);
                            Ok(())
                        },
                    )
                })
                .expect("no job fails");
            assert_eq!(seen, (0..200).map(|i| i * 10).collect::<Vec<_>>(), "{threads} threads, window {window}");
        }
    }

    #[test]
    fn the_first_error_in_item_order_stops_the_line_and_is_returned() {
        let items: Vec<u64> = (0..500).collect();
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let mut seen = Vec::new();
        let result = pool(2).install(|| {
            run_ordered(
                &items,
                4,
                |&i| {
                    taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i == 37 || i == 40 { Err(Error::InvalidArgument { detail: format!("item {i}") }) } else { Ok(i) }
                },
                &mut |value| {
                    seen.push(value);
                    Ok(())
                },
            )
        });
        assert!(matches!(result, Err(Error::InvalidArgument { ref detail }) if detail == "item 37"), "{result:?}");
        assert_eq!(seen, (0..37).collect::<Vec<_>>());
        // The window bounds how far past the error jobs ran.
        assert!(taken.into_inner() <= 37 + 1 + 4, "jobs stop soon after the error");
    }

    #[test]
    fn an_error_of_the_consumer_stops_the_line() {
        let items: Vec<u64> = (0..100).collect();
        let mut seen = 0;
        let result = pool(2).install(|| {
            run_ordered(&items, 2, |&i| Ok(i), &mut |value| {
                if value == 10 {
                    return Err(Error::InvalidArgument { detail: "full".into() });
                }
                seen += 1;
                Ok(())
            })
        });
        assert!(matches!(result, Err(Error::InvalidArgument { .. })));
        assert_eq!(seen, 10);
    }

    #[test]
    fn a_panicking_job_panics_the_caller_instead_of_hanging() {
        let items: Vec<u64> = (0..100).collect();
        let outcome = std::panic::catch_unwind(|| {
            pool(2)
                .install(|| run_ordered(&items, 2, |&i| if i == 5 { panic!("job 5") } else { Ok(i) }, &mut |_| Ok(())))
        });
        assert!(outcome.is_err());
    }
}
