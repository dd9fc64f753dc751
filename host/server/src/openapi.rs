//! The OpenAPI document, generated from the handlers' annotations and
//! served at `/openapi.json`. Plugin actions' own schemas are per plugin
//! and come from the catalogue (`GET /v1/tenants/{tenant}/plugins/{plugin}`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, audit, connections, health, invoke, plugins};

/// dvhost's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(title = "dvhost", description = "Dataverse plugin actions, deploys, audit and administration"),
    paths(
        invoke::invoke,
        plugins::list, plugins::show, plugins::deploy, plugins::configure, plugins::rollback, plugins::delete,
        audit::audit,
        admin::tenants, admin::create_tenant, admin::delete_tenant,
        admin::keys, admin::create_key, admin::revoke_key,
        admin::connections, admin::test_connection, admin::create_integration,
        connections::create, connections::show, connections::complete, connections::rotate, connections::delete,
        health::healthz, health::readyz, health::metrics,
    ),
    modifiers(&Security),
    tags(
        (name = "actions", description = "Calling plugin actions"),
        (name = "plugins", description = "The plugin catalogue and deploys"),
        (name = "audit", description = "The audit log"),
        (name = "admin", description = "Operators' API (admin key)"),
        (name = "operations", description = "Probes and metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["api_key", "admin_key"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("dvk_<id>_<secret>")
                        .build(),
                ),
            );
        }
    }
}
