//! The engine's own rayon pool, and [`run`], the one way onto it. Reads and writes run while
//! their caller holds the store's state lock; on the global pool, a caller's other rayon
//! tasks blocked on that lock could occupy every worker and starve the engine's jobs (a
//! deadlock). A private pool runs only engine jobs, which never take the state lock.

use std::cell::Cell;
use std::sync::{Mutex, PoisonError};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// Runs `op` on the engine's pool and waits for it. On a thread of another rayon pool (a
/// caller's own rayon task), `install` would let the thread run that pool's other tasks
/// while it waits; one of them taking the state lock this call's caller holds (a reader
/// behind a queued writer, or a writer) would deadlock. Such a thread hands the wait to a
/// plain thread, whose wait blocks without running anything.
pub(crate) fn run<R: Send>(op: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    if rayon::current_thread_index().is_none() || pool.current_thread_index().is_some() {
        return pool.install(op);
    }
    std::thread::scope(|scope| {
        scope.spawn(|| pool.install(op)).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Below this many bytes of work (decoded or encoded), a request runs on the caller's
/// thread: waking the pool and waiting for it costs tens of microseconds of scheduling,
/// more than a second core saves on so little (a loop of small reads spent two thirds of
/// its time in the scheduler).
const PARALLEL_MIN_BYTES: u64 = 1 << 20;

/// Whether `items` units of work of `bytes` in all are worth handing to the pool.
pub(crate) fn worth_parallel(items: usize, bytes: u64) -> bool {
    items > 1 && bytes >= PARALLEL_MIN_BYTES
}

/// Threads of the engine's pool.
pub(crate) fn threads() -> usize {
    pool().current_num_threads()
}

/// This process's pool, built on first use with one thread per core (`RAYON_NUM_THREADS`
/// overrides). A child forked after it started holds the parent's pool but none of its
/// threads, and a job queued there would wait forever: the pool is kept with the process
/// that built it, and a child builds its own. The parent's copy is left as it is (never
/// dropped: its threads are not the child's to stop).
///
/// Each thread keeps the answer, so the lock is taken once per thread and process, not
/// on every call: a fork while another thread held it would leave the child's copy locked
/// for good.
fn pool() -> &'static ThreadPool {
    thread_local! {
        static KNOWN: Cell<Option<(u32, &'static ThreadPool)>> = const { Cell::new(None) };
    }
    let pid = std::process::id();
    KNOWN.with(|known| match known.get() {
        Some((owner, pool)) if owner == pid => pool,
        _ => {
            let pool = process_pool(pid);
            known.set(Some((pid, pool)));
            pool
        }
    })
}

/// The pool on record, with the process that built it.
static POOL: Mutex<Option<(u32, &'static ThreadPool)>> = Mutex::new(None);

/// The pool of process `pid`, built if the one on record belongs to another (a parent).
fn process_pool(pid: u32) -> &'static ThreadPool {
    let mut slot = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    match *slot {
        Some((owner, pool)) if owner == pid => pool,
        _ => {
            let pool = ThreadPoolBuilder::new()
                .thread_name(|i| format!("atlas-engine-{i}"))
                .build()
                .expect("the OS can start the engine's threads");
            let pool: &'static ThreadPool = Box::leak(Box::new(pool));
            *slot = Some((pid, pool));
            pool
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A fork copies the lock in whatever state another thread left it; a thread that has
    /// found its pool before must not need the lock again.
    #[test]
    fn a_thread_that_found_its_pool_does_not_wait_for_the_lock() {
        let (ready, is_ready) = mpsc::channel();
        let (ask, asked) = mpsc::channel::<()>();
        let (tell, told) = mpsc::channel();
        let worker = std::thread::spawn(move || {
            let first: *const ThreadPool = pool();
            ready.send(()).unwrap();
            asked.recv().unwrap();
            tell.send(std::ptr::eq(first, pool())).unwrap();
        });
        is_ready.recv().unwrap();
        let held = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        ask.send(()).unwrap();
        let same = told.recv_timeout(Duration::from_secs(10));
        drop(held);
        assert_eq!(same, Ok(true), "the second call waited for the lock or found another pool");
        worker.join().unwrap();
    }
}
