//! `GET /metadata/endpoints`: the cloud description clients load to find the emulator's
//! Resource Manager and login endpoints (azurerm's `metadata_host`, az's cloud registration).

use http::StatusCode;
use serde_json::{json, Value};

use super::arm::ErrorResponse;
use crate::emulator::http::{json_response, Request, Response};
use crate::emulator::state::AppState;

/// Name reported for the emulated cloud.
pub(crate) const CLOUD_NAME: &str = "AkspolicyEmulator";
const SUPPORTED: [&str; 3] = ["2015-01-01", "2019-05-01", "2022-09-01"];

pub(crate) fn matches(segments: &[String]) -> bool {
    segments.len() == 2
        && segments[0].eq_ignore_ascii_case("metadata")
        && segments[1].eq_ignore_ascii_case("endpoints")
}

pub(crate) fn handle(_state: &AppState, req: &Request) -> Response {
    let base = format!("{}/", req.base_url);
    let body = match req.query_param("api-version") {
        None | Some("") => return ErrorResponse::missing_api_version().into_response(),
        Some("2022-09-01") => cloud(&base),
        Some("2019-05-01") => Value::Array(vec![cloud(&base)]),
        Some("2015-01-01") => json!({
            "galleryEndpoint": base,
            "graphEndpoint": "https://graph.windows.net/",
            "portalEndpoint": base,
            "authentication": {
                "loginEndpoint": base,
                "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"]
            }
        }),
        Some(other) => {
            return ErrorResponse::invalid_api_version(other, "metadata/endpoints", &SUPPORTED)
                .into_response()
        }
    };
    json_response(StatusCode::OK, &body)
}

/// One cloud object in the 2022-09-01 shape; login and Resource Manager are both this server.
fn cloud(base: &str) -> Value {
    json!({
        "name": CLOUD_NAME,
        "portal": base,
        "resourceManager": base,
        "authentication": {
            "loginEndpoint": base,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD"
        },
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "graph": "https://graph.windows.net/",
        "graphAudience": "https://graph.windows.net/",
        "media": "https://rest.media.azure.net",
        "batch": "https://batch.core.windows.net/",
        "sqlManagement": "https://management.core.windows.net:8443/",
        "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/quickstart-templates/aliases.json",
        "activeDirectoryDataLake": "https://datalake.azure.net/",
        "appInsightsResourceId": "https://api.applicationinsights.io",
        "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
        "attestationResourceId": "https://attest.azure.net",
        "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
        "logAnalyticsResourceId": "https://api.loganalytics.io",
        "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
        "suffixes": {
            "acrLoginServer": "azurecr.io",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net",
            "keyVaultDns": "vault.azure.net",
            "mariadbServerEndpoint": "mariadb.database.azure.com",
            "mhsmDns": "managedhsm.azure.net",
            "mysqlServerEndpoint": "mysql.database.azure.com",
            "postgresqlServerEndpoint": "postgres.database.azure.com",
            "sqlServerHostname": "database.windows.net",
            "storage": "core.windows.net",
            "storageSyncEndpointSuffix": "afs.azure.net",
            "synapseAnalytics": "dev.azuresynapse.net"
        }
    })
}
