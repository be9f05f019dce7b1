//! How freed host (CPU) memory is kept in the process for reuse.
//!
//! Ingest and training both allocate and free the same large buffers over and over (ingest:
//! decoded series, crops, row groups being encoded; training: tensors). With glibc's
//! defaults much of that memory goes back to the kernel on free and is page-faulted and
//! zeroed again on the next use. For ingest of 50 synthetic LIDC studies, keeping it cut
//! system time from ~0.24 s to ~0.10 s of ~0.9 s CPU in all.
//!
//! Training:
//! libtorch allocates CPU tensors with `posix_memalign` and frees them when the last
//! reference goes, so every step allocates and frees the same few hundred activation and
//! gradient buffers. With glibc's defaults, blocks above the (dynamic) mmap threshold are
//! mapped fresh and unmapped on free, and freed memory at the top of a heap is given back
//! to the kernel; the next step then page-faults it in again and the kernel zeroes every
//! page first. Measured on the paper model at batch 12, 128²: 50k-90k minor faults and
//! 0.18-0.27 s of system time per CPU step, against 3k-20k and 0.04-0.08 s with the
//! settings below (`bench/bench_step.sh`). PyTorch in Python avoids most of it because its
//! step runs in the main arena, which grows with brk and is rarely trimmed.
//!
//! The cost is that a process keeps its peak heap mapped until it exits, which is what a
//! training or ingest process wants anyway (ingest's peak stays flat however many studies).

/// Largest block glibc allows to come from the heap instead of its own mapping (its
/// maximum, HEAP_MAX_SIZE / 2 on 64-bit). Setting it also stops glibc's dynamic threshold.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of a heap before glibc returns it to the kernel: effectively
/// never during a run.
const TRIM_THRESHOLD: i32 = i32::MAX;

/// Keeps freed memory in the process for reuse (see the module doc). Call once at the
/// start of a long command (ingest, training, inference); a no-op outside glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; valid at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
