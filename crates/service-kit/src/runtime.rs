//! The tokio runtime: a binary picks its worker threads (`1` runs everything on the calling
//! thread).

/// A tokio runtime with `threads` worker threads: 1 runs everything on the calling thread (no
/// cross-thread wake-ups, one malloc arena), 0 means one per core.
///
/// # Errors
/// When the runtime cannot start.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if threads > 1 {
        builder.worker_threads(threads);
    }
    builder.enable_all().build()
}
