//! glibc's allocator tuned for training while a training run lasts.
//!
//! Each CPU training step allocates and frees several batch-sized buffers inside burn (79 MB
//! each for the full-size model at batch 1,024). glibc serves blocks over its mmap threshold
//! (at most 32 MiB) with fresh mappings and unmaps them on free, so every step faulted the
//! pages in again and the kernel zeroed them: 3.0 M page faults for 8 steps, about a third of
//! the time (`perf stat`, `perf record`: `clear_page_erms`; BENCHMARKS.md). During training,
//! large blocks come from the heap instead (`M_MMAP_MAX = 0`) and 1 GiB is kept at its top
//! (`M_TOP_PAD`), so freed buffers are reused: 0.26 M faults, peak RSS about the same.
//! The defaults come back when the last run ends, so the rest of the program (the window, the
//! streaming embedding) returns memory to the system as before. Not glibc: nothing is changed.

use std::sync::Mutex;

/// Training runs in progress.
static RUNS: Mutex<usize> = Mutex::new(0);

/// While alive (and while any other is), glibc keeps freed memory for reuse.
pub(crate) struct TrainingHeap(());

impl TrainingHeap {
    /// Tunes the allocator for training if no other run already did.
    pub(crate) fn enter() -> Self {
        let mut runs = RUNS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *runs == 0 {
            set(true);
        }
        *runs += 1;
        Self(())
    }
}

impl Drop for TrainingHeap {
    fn drop(&mut self) {
        let mut runs = RUNS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *runs -= 1;
        if *runs == 0 {
            set(false);
        }
    }
}

/// glibc's defaults: 65,536 mappings at most (`DEFAULT_MMAP_MAX`), no top pad beyond the
/// 128 KiB granularity (`DEFAULT_TOP_PAD`).
#[allow(unsafe_code)]
fn set(training: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let (mmap_max, top_pad) = if training {
            (0, 1 << 30)
        } else {
            (65_536, 128 << 10)
        };
        // SAFETY: `mallopt` only sets tunables of glibc's allocator, under its own lock; it is
        // thread-safe and touches no memory the program owns.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, mmap_max);
            libc::mallopt(libc::M_TOP_PAD, top_pad);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = training;
}
