//! The engine's own rayon pool. Reads and writes run while their caller holds the store's
//! state lock; on the global pool, a caller's other rayon tasks blocked on that lock could
//! occupy every worker and starve the engine's jobs (a deadlock). A private pool runs only
//! engine jobs, which never take the state lock.

use std::sync::OnceLock;

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The pool, built on first use with one thread per core (`RAYON_NUM_THREADS` overrides).
pub(crate) fn pool() -> &'static ThreadPool {
    static POOL: OnceLock<ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        ThreadPoolBuilder::new()
            .thread_name(|i| format!("atlas-engine-{i}"))
            .build()
            .expect("the OS can start the engine's threads")
    })
}
