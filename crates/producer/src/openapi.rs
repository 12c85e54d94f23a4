//! The OpenAPI document, generated from the handlers' annotations and the answer types
//! (utoipa), so that it cannot drift from the code. CI runs schemathesis against a running
//! producer with it (`scripts/test`): any 5xx or any answer that does not match fails the build.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::auth::Unauthorized;
use crate::routes::{admin, batch, hooks, ops, stream, tasks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskq producer",
        description = "Enqueue tasks that poll a slow third-party API, read their state and results, and administer the queue."
    ),
    paths(
        tasks::enqueue,
        tasks::submit,
        batch::submit_batch,
        tasks::show,
        stream::events,
        tasks::cancel,
        hooks::hook,
        admin::list,
        admin::stats,
        admin::retry,
        admin::retry_callback,
        admin::retry_dead,
        admin::purge,
        ops::queues,
        ops::health,
        ops::metrics,
    ),
    // Types used only as query parameters are not collected from the paths; responses shared by
    // reference are declared once here.
    components(
        schemas(taskq::FinalState, taskq::State),
        responses(Unauthorized)
    ),
    modifiers(&TokenSchemes),
    tags(
        (name = "tasks", description = "Asynchronous request-reply: enqueue, read, cancel. Requires Authorization: Bearer <CLIENT_TOKEN> (or the admin token) when a client token is set; cancel requires the admin token when only that is set."),
        (name = "admin", description = "Requires Authorization: Bearer <ADMIN_TOKEN> when the token is set."),
        (name = "hooks", description = "Provider webhooks: the signed URL a provider calls when a job ends (no token; the sig is the credential)."),
        (name = "ops", description = "Health and metrics."),
    )
)]
struct ApiDoc;

/// Declares the bearer tokens: the admin routes' and the client routes'.
struct TokenSchemes;

impl Modify for TokenSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["admin_token", "client_token"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// The document (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    &DOCUMENT
}

/// `GET /openapi.json`: the document.
pub async fn serve() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}
