//! Webhooks both ways: taskq calls its clients back when their tasks end (callbacks), and
//! providers call taskq back when their jobs end (hooks, see [`hook`]).
//!
//! Task callbacks: when a task submitted with a `callback_url` ends (done, dead, cancelled), the
//! consumer POSTs the task's view to that URL, signed the way the Standard Webhooks
//! specification says, so a client can trust it came from taskq and handle each one once.
//!
//! A callback URL is chosen by a client and called from inside taskq's network, so it is
//! checked twice: by the producer when the task is submitted ([`Destination::parse`]) and by
//! the consumer at every delivery, on the addresses the connection actually uses
//! ([`Deliverer`]). Neither ever calls a loopback, private, link-local or cloud-metadata
//! address unless `CALLBACK_ALLOW_PRIVATE` says so.
//!
//! This crate is one delivery and the pieces it needs; queueing the callbacks and retrying
//! them with backoff (up to `CALLBACK_MAX_ATTEMPTS`) belong to the caller, guided by
//! [`DeliveryError::is_permanent`].
//!
//! # Layout
//! - [`settings`]: `CALLBACK_SECRET`, `CALLBACK_MAX_ATTEMPTS`, `CALLBACK_TIMEOUT_MS`,
//!   `CALLBACK_ALLOW_PRIVATE` as flags and environment variables.
//! - [`sign`]: the `whsec_` secret (printed as `***`), `v1` signatures and their verification,
//!   and the `webhook-id` rules.
//! - [`destination`]: which URLs a callback may go to, and the redacted form that logs and
//!   errors show.
//! - [`forbidden`]: the addresses and host names inside the network, which a callback never
//!   reaches.
//! - [`deliver`]: the POST itself and what came of it.
//! - [`hook`]: provider webhooks in: the signed URL a provider calls back, and its check.
//! - `resolver`: the host-name resolution that refuses forbidden addresses ([`guarded`] puts it
//!   in a client for other user-chosen URLs, such as the files a task uploads).
//! - [`tls`]: rustls with ring and the system's authorities, loaded at the first `https://`
//!   callback; the consumer's API client uses its pieces too.

pub mod deliver;
pub mod destination;
pub mod forbidden;
pub mod hook;
mod resolver;
pub mod settings;
pub mod sign;
pub mod tls;

pub use deliver::{BuildError, Delivered, Deliverer, DeliveryError, MAX_SNIPPET_BYTES};
pub use destination::{Destination, DestinationError, MAX_URL_BYTES};
pub use forbidden::is_forbidden;
pub use hook::{HookSecret, HookUrls};
pub use resolver::{guarded, refused_by_guard};
pub use settings::{CallbackSettings, HookSettings, HookSettingsError};
pub use sign::{CallbackSecret, InvalidId, SecretError, check_id, message_id};
pub use tls::TlsError;
