//! What every binary of the workspace (producer, consumer, mock-api, bench) shares at its edge,
//! apart from the queue: the logging flag and set-up, the tokio runtime, the shutdown signal,
//! the Prometheus text format, and an HTTP server that holds its connections to limits. It knows
//! nothing of the queue, so the mock third-party API can use it without depending on the queue
//! library.
//!
//! A kit, not a service: it runs nothing by itself; each binary takes the parts it needs. Its
//! queue-aware counterpart is `queue-kit`.
//!
//! - [`command_line`]: parsing flags and environment, an empty variable taken as unset.
//! - [`healthcheck`]: `--healthcheck`, a binary probing its own health route (no curl needed).
//! - [`logging`]: `LOG_FORMAT`, and logging to stderr filtered by `RUST_LOG`.
//! - [`runtime`]: a runtime with a chosen number of worker threads.
//! - [`shutdown`]: the first SIGINT or SIGTERM.
//! - [`prometheus`]: the text exposition format and a lock-free histogram.
//! - [`connections`]: the limits on HTTP connections (timeouts, the cap and what happens at
//!   it) and their accounting; [`http_server`] serves a router under them; [`open_files`]
//!   raises the open-file limit the cap is sized from.

pub mod command_line;
pub mod connections;
pub mod healthcheck;
pub mod http_server;
pub mod logging;
pub mod open_files;
pub mod prometheus;
pub mod runtime;
pub mod shutdown;

pub use command_line::parse;
pub use connections::{ConnectionArgs, Connections, Limits};
pub use healthcheck::HealthcheckArgs;
pub use http_server::serve;
pub use logging::{LogArgs, LogFormat, init_tracing};
pub use runtime::runtime;
pub use shutdown::shutdown_signal;
