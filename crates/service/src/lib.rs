//! What every binary of the workspace (producer, consumer, mock-api, bench) shares at its edge,
//! apart from the queue: the logging flag and set-up, the tokio runtime, the shutdown signal,
//! and the Prometheus text format. It knows nothing of the queue, so the mock third-party API
//! can use it without depending on the queue library.
//!
//! - [`logging`]: `LOG_FORMAT`, and logging to stderr filtered by `RUST_LOG`.
//! - [`runtime`]: a runtime with a chosen number of worker threads.
//! - [`shutdown`]: the first SIGINT or SIGTERM.
//! - [`prometheus`]: the text exposition format and a lock-free histogram.

pub mod logging;
pub mod prometheus;
pub mod runtime;
pub mod shutdown;

pub use logging::{LogArgs, LogFormat, init_tracing};
pub use runtime::runtime;
pub use shutdown::shutdown_signal;
