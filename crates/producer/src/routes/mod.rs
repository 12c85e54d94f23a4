//! The producer's routes: one module per group of handlers. The router that puts them together
//! with their guards and body limits is [`crate::router`]; the OpenAPI document that describes
//! them is [`crate::openapi`], beside them.
//!
//! | route | answer |
//! |---|---|
//! | `GET /?task-name=NAME` | enqueue unless live or done; 202 + `Location` + `Retry-After` while not done, 200 with the result when done |
//! | `POST /tasks` `{"name", "payload", "delay_ms" \| "run_at_ms"}` | the same, with a JSON payload kept in the record, due now or later |
//! | `POST /tasks/batch` `{"tasks": [...]}` | up to 1,000 enqueues; one answer (or error) per task, in order |
//! | `GET /tasks/{name}` | the task's view; 404 for a name never seen |
//! | `GET /?task-name=NAME&wait=SECS`, `GET /tasks/{name}?wait=SECS` | long-poll: held until the task is final or the time is up |
//! | `GET /tasks/{name}/events` | server-sent events: the view at once and at every change, until final |
//! | `POST /hooks/{queue}/{name}?sig=` | a provider's webhook: the task is polled at once (signed URL, no token) |
//! | `DELETE /tasks/{name}` | cancel: the task is never called again |
//! | `HEAD /?task-name=NAME` | the status a read of the task would answer; never enqueues |
//! | `GET /tasks?state=&cursor=&limit=` | admin: one page of the tasks in a state |
//! | `GET /stats` | admin: counts per set, oldest due age, throughput, counters |
//! | `POST /tasks/{name}/retry`, `POST /dead/retry` | admin: bring back one or every dead task |
//! | `POST /tasks/{name}/callback/retry` | admin: deliver a failed callback again |
//! | `POST /purge?state=` | admin: delete the done, dead or cancelled records |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /openapi.json` | the OpenAPI document of all of the above |
//! | `GET /ui` | the dashboard (embedded; uses the routes above) |
//! | `GET /queues` | the queues served, the default first |
//! | `GET /healthz` | 200 when Redis answers, 503 when it does not |
//!
//! Every route about tasks takes `?queue=NAME` to pick one of the queues served (`QUEUES`); without
//! it, the first. Which routes need which bearer token: see [`crate::tokens`].

pub mod admin;
pub mod auth;
pub mod batch;
pub mod hooks;
pub mod ops;
pub mod stream;
pub mod tasks;
