//! Resource `akspolicy_cluster_addon`: turns the Azure Policy add-on of one AKS cluster on (and
//! off on destroy) without owning the cluster. It only ever changes
//! `properties.addonProfiles.azurepolicy`: the cluster is read, that one profile is changed and
//! the cluster is written back guarded by its eTag, so a concurrent change by someone else is
//! never overwritten.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Map, Value as Json};

use crate::arm::api_version;
use crate::arm::{ArmClient, ArmError, Collection, ResourceId, SnapshotRead};
use crate::framework::timeouts::{self, Operation, TimeoutDefaults};
use crate::framework::typed::{Knowable, Typed};
use crate::framework::{
    ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, CallContext, DeleteRequest,
    DeleteResponse, Diagnostic, Diagnostics, ImportRequest, ImportResponse, ReadRequest,
    ReadResponse, Resource, Schema, Type, Value,
};
use crate::resources::shared::decode::decoded;
use crate::typed_object;

use super::provider::Configured;
use super::shared::errors::arm_error_diagnostic;
use super::shared::schema::{id_attribute, typed_schema};
use crate::policy::kubernetes::MANAGED_CLUSTERS;

/// The add-on's key in `addonProfiles`; Azure and the portal vary its casing.
const ADDON_KEY: &str = "azurepolicy";
const DEFAULT_VERSION: &str = "v2";

/// AKS operations take minutes in Azure; these match azurerm's cluster defaults.
const TIMEOUTS: TimeoutDefaults = TimeoutDefaults {
    create: Duration::from_secs(90 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(90 * 60),
    delete: Duration::from_secs(90 * 60),
};

pub struct ClusterAddonResource;

fn identity_type() -> Type {
    Type::object([
        ("client_id", Type::String),
        ("object_id", Type::String),
        ("resource_id", Type::String),
    ])
}

fn schema() -> Schema {
    Schema::new(
        Block::new()
            .description(
                "Enables the Azure Policy add-on (Gatekeeper) on an existing AKS cluster. Only the \
                 add-on's profile is changed, guarded by the cluster's eTag, so other cluster \
                 settings and concurrent changes are never overwritten. Destroying the resource \
                 disables the add-on.",
            )
            .attribute(id_attribute("The cluster's ID."))
            .attribute(
                Attribute::string("cluster_id")
                    .required()
                    .requires_replace()
                    .description("The ID of the AKS cluster (`/subscriptions/.../resourceGroups/.../providers/Microsoft.ContainerService/managedClusters/NAME`).")
                    .validate_with(|v, path, diags| {
                        if let Some(s) = v.as_str() {
                            if let Err(msg) = parse_cluster_id(s) {
                                diags.error_at(path.clone(), "Invalid cluster ID", msg);
                            }
                        }
                    }),
            )
            .attribute(
                Attribute::bool("enabled")
                    .default(Value::Bool(true))
                    .description("Whether the add-on is on. Turning it off outside Terraform shows up here as drift."),
            )
            .attribute(
                Attribute::new("config", Type::map(Type::String))
                    .default(Value::string_map([("version", DEFAULT_VERSION)]))
                    .description("The add-on's configuration as AKS stores it."),
            )
            .attribute(
                Attribute::string("version")
                    .computed()
                    .description("The add-on version in effect (`config.version`)."),
            )
            .attribute(
                Attribute::new("identity", Type::list(identity_type()))
                    .computed()
                    .description("The managed identity AKS created for the add-on (`client_id`, `object_id`, `resource_id`), e.g. to grant it roles. Empty while the add-on is off (also when it was switched off outside Terraform), so read it as `try(akspolicy_cluster_addon.x.identity[0].object_id, null)`: a bare `identity[0]` in an output fails `terraform plan -refresh-only` then."),
            )
            .block(timeouts::block(TIMEOUTS)),
    )
}

fn parse_cluster_id(id: &str) -> Result<ResourceId, String> {
    let parsed = ResourceId::parse(id).map_err(|e| e.to_string())?;
    if !parsed.is_type(MANAGED_CLUSTERS) {
        return Err(format!(
            "{id:?} is a {} ID; cluster_id must be the ID of a {MANAGED_CLUSTERS}.",
            parsed.resource_type()
        ));
    }
    Ok(parsed)
}

/// The `addonProfiles` key used for the add-on, whatever its casing.
fn addon_key(cluster: &Json) -> Option<String> {
    cluster
        .pointer("/properties/addonProfiles")?
        .as_object()?
        .keys()
        .find(|k| k.eq_ignore_ascii_case(ADDON_KEY))
        .cloned()
}

fn addon_profile(cluster: &Json) -> Option<&Json> {
    let key = addon_key(cluster)?;
    cluster.pointer("/properties/addonProfiles")?.get(key)
}

typed_object! {
    /// The resource's configuration, plan or state.
    pub struct ClusterAddon {
        pub id: Knowable<String>,
        pub cluster_id: Option<String>,
        pub enabled: Option<bool>,
        pub config: Option<BTreeMap<String, String>>,
        pub version: Knowable<String>,
        pub identity: Knowable<Vec<AddonIdentity>>,
        pub timeouts: Value,
    }
}

typed_object! {
    /// The add-on's managed identity, as Azure reports it.
    pub struct AddonIdentity {
        pub client_id: Option<String>,
        pub object_id: Option<String>,
        pub resource_id: Option<String>,
    }
}

/// The state for a cluster as read from Azure; `prior` supplies the configured `timeouts`.
fn to_state(cluster_id: &str, cluster: &Json, prior: &ClusterAddon) -> ClusterAddon {
    let profile = addon_profile(cluster);
    let enabled = profile
        .and_then(|p| p.get("enabled"))
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let config: BTreeMap<String, String> = profile
        .and_then(|p| p.get("config"))
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let version = config.get("version").cloned();
    let identity = profile
        .and_then(|p| p.get("identity"))
        .filter(|i| i.is_object())
        .map(|i| {
            let s = |k: &str| i.get(k).and_then(Json::as_str).map(str::to_string);
            vec![AddonIdentity {
                client_id: s("clientId"),
                object_id: s("objectId"),
                resource_id: s("resourceId"),
            }]
        })
        .unwrap_or_default();
    ClusterAddon {
        id: Knowable::Known(cluster_id.to_string()),
        cluster_id: Some(cluster_id.to_string()),
        enabled: Some(enabled),
        config: Some(config),
        version: version.into(),
        identity: Knowable::Known(identity),
        timeouts: prior.timeouts.clone(),
    }
}

/// Why one attempt to write the add-on profile did not finish.
enum Attempt {
    Done(Json),
    /// 412: the cluster changed since we read it; read again and re-apply our change.
    Conflict,
    /// 409: another operation is running on the cluster; wait for it.
    Busy,
    Failed(ArmError),
}

async fn write_profile(
    client: &ArmClient,
    cluster_id: &str,
    enabled: bool,
    config: &Map<String, Json>,
) -> Result<Option<Attempt>, ArmError> {
    let Some(mut cluster) = client
        .get_optional::<Json>(cluster_id, api_version::MANAGED_CLUSTERS)
        .await?
    else {
        return Ok(None);
    };
    let etag = cluster
        .get("eTag")
        .or_else(|| cluster.get("etag"))
        .and_then(Json::as_str)
        .map(str::to_string);
    let key = addon_key(&cluster).unwrap_or_else(|| ADDON_KEY.to_string());
    let properties = cluster
        .as_object_mut()
        .and_then(|c| {
            c.entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        })
        .ok_or_else(|| ArmError::Config("the cluster has no properties object".into()))?;
    let profiles = properties
        .entry("addonProfiles")
        .or_insert_with(|| json!({}));
    if !profiles.is_object() {
        *profiles = json!({});
    }
    // The identity is AKS's to fill; sending it back is rejected by the real service.
    profiles[key.as_str()] = json!({ "enabled": enabled, "config": config });
    let attempt = match client
        .put_if_match::<Json, Json>(
            cluster_id,
            api_version::MANAGED_CLUSTERS,
            &cluster,
            etag.as_deref(),
        )
        .await
    {
        Ok(updated) => Attempt::Done(updated),
        Err(e) if e.status() == Some(412) => Attempt::Conflict,
        Err(e) if e.status() == Some(409) => Attempt::Busy,
        Err(e) => Attempt::Failed(e),
    };
    Ok(Some(attempt))
}

/// The list of the managed clusters in the resource group of `cluster_id`, for batched reads.
fn clusters_of_resource_group(cluster_id: &str) -> Option<Collection> {
    let lower = cluster_id.to_ascii_lowercase();
    let at = lower.find("/providers/microsoft.containerservice/managedclusters/")?;
    Some(Collection {
        path: format!("{}/providers/{MANAGED_CLUSTERS}", &cluster_id[..at]),
        api_version: api_version::MANAGED_CLUSTERS,
        filter: None,
        paged_by_top: false,
    })
}

/// Sets the add-on profile, re-reading on 412 and waiting out 409s, within `limit`.
async fn set_profile(
    ctx: &CallContext,
    client: &ArmClient,
    cluster_id: &str,
    enabled: bool,
    config: &Map<String, Json>,
    limit: Duration,
    op: Operation,
) -> Result<Option<Json>, Diagnostic> {
    let started = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        let attempt = tokio::select! {
            a = write_profile(client, cluster_id, enabled, config) => a,
            _ = ctx.cancel.cancelled() => {
                return Err(Diagnostic::error(
                    "Interrupted",
                    format!("Terraform asked the provider to stop while it was changing the add-on of {cluster_id}. Run apply again to finish."),
                ));
            }
        };
        let retry_reason = match attempt {
            Err(e) => {
                return Err(arm_error_diagnostic(
                    "Changing the Azure Policy add-on failed",
                    &e,
                ))
            }
            Ok(None) => return Ok(None),
            Ok(Some(Attempt::Done(cluster))) => return Ok(Some(cluster)),
            Ok(Some(Attempt::Failed(e))) => {
                return Err(arm_error_diagnostic(
                    "Changing the Azure Policy add-on failed",
                    &e,
                ))
            }
            Ok(Some(Attempt::Conflict)) => "the cluster was changed by someone else (412)",
            Ok(Some(Attempt::Busy)) => "another operation is running on the cluster (409)",
        };
        if started.elapsed() + delay > limit {
            return Err(Diagnostic::error(
                "Timed out changing the Azure Policy add-on",
                format!(
                    "Gave up after {}s because {retry_reason}. Raise `timeouts {{ {} = ... }}` if the cluster is busy for longer.",
                    started.elapsed().as_secs(),
                    op.name()
                ),
            ));
        }
        log::debug!("retrying add-on change on {cluster_id}: {retry_reason}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

fn config_map(config: Option<&BTreeMap<String, String>>) -> Map<String, Json> {
    config
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
        .collect()
}

impl ClusterAddonResource {
    async fn apply(
        &self,
        ctx: &CallContext,
        req: ApplyRequest<'_>,
        op: Operation,
    ) -> ApplyResponse {
        let planned = match ClusterAddon::decode(req.planned) {
            Ok(p) => p,
            Err(e) => return ApplyResponse::failed(e.into()),
        };
        let mut diags = Diagnostics::new();
        let Some(configured) = Configured::from_context(ctx, &mut diags) else {
            return ApplyResponse::failed(diags);
        };
        let cluster_id = planned.cluster_id.as_deref().unwrap_or_default();
        let enabled = planned.enabled.unwrap_or(true);
        let config = config_map(planned.config.as_ref());
        let limit = timeouts::for_operation(req.planned, op, TIMEOUTS);
        configured.snapshots.note_write(cluster_id);
        match set_profile(
            ctx,
            &configured.client,
            cluster_id,
            enabled,
            &config,
            limit,
            op,
        )
        .await
        {
            Ok(Some(cluster)) => {
                ApplyResponse::ok(to_state(cluster_id, &cluster, &planned).to_value())
            }
            Ok(None) => {
                diags.push(
                    Diagnostic::error(
                        "Cluster not found",
                        format!("There is no AKS cluster {cluster_id}. Check the ID, or create the cluster first."),
                    )
                    .at(AttributePath::attr("cluster_id")),
                );
                ApplyResponse::failed(diags)
            }
            Err(d) => {
                diags.push(d);
                ApplyResponse::failed(diags)
            }
        }
    }
}

#[async_trait]
impl Resource for ClusterAddonResource {
    typed_schema!("akspolicy_cluster_addon", schema(), ClusterAddon);

    async fn create(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = self.apply(ctx, req, Operation::Create).await;
    }

    async fn read(&self, ctx: &CallContext, req: ReadRequest<'_>, resp: &mut ReadResponse) {
        resp.state = read_cluster_addon(ctx, req.state, &mut resp.diags).await;
    }

    async fn update(&self, ctx: &CallContext, req: ApplyRequest<'_>, resp: &mut ApplyResponse) {
        *resp = self.apply(ctx, req, Operation::Update).await;
    }

    async fn delete(&self, ctx: &CallContext, req: DeleteRequest<'_>, resp: &mut DeleteResponse) {
        let (prior, diags) = (req.prior, &mut resp.diags);
        let Some(configured) = Configured::from_context(ctx, diags) else {
            return;
        };
        let limit = timeouts::for_operation(prior, Operation::Delete, TIMEOUTS);
        let Some(prior) = decoded::<ClusterAddon>(prior, diags) else {
            return;
        };
        let cluster_id = prior.cluster_id.as_deref().unwrap_or_default();
        let config = config_map(prior.config.as_ref());
        configured.snapshots.note_write(cluster_id);
        // A cluster that is already gone has no add-on to disable.
        if let Err(d) = set_profile(
            ctx,
            &configured.client,
            cluster_id,
            false,
            &config,
            limit,
            Operation::Delete,
        )
        .await
        {
            diags.push(d);
        }
    }

    async fn import(&self, _ctx: &CallContext, req: ImportRequest<'_>, resp: &mut ImportResponse) {
        resp.state = import_cluster_addon(req.id, &mut resp.diags);
    }
}

async fn read_cluster_addon(
    ctx: &CallContext,
    state: &Value,
    diags: &mut Diagnostics,
) -> Option<Value> {
    let configured = Configured::from_context(ctx, diags)?;
    let Some(prior) = decoded::<ClusterAddon>(state, diags) else {
        return Some(state.clone());
    };
    let cluster_id = prior.cluster_id.as_deref().unwrap_or_default();
    let limit = timeouts::for_operation(state, Operation::Read, TIMEOUTS);
    let read = tokio::time::timeout(limit, async {
        // Many clusters of one resource group: one list answers them all.
        if let Some(collection) = clusters_of_resource_group(cluster_id) {
            let listed = configured
                .snapshots
                .read::<Json>(&configured.client, &collection, cluster_id)
                .await;
            if let SnapshotRead::Found(cluster) = listed {
                return Ok(Some(cluster));
            }
        }
        configured
            .client
            .get_optional::<Json>(cluster_id, api_version::MANAGED_CLUSTERS)
            .await
    })
    .await;
    match read {
        Ok(Ok(Some(cluster))) => {
            // Keep the user's spelling of the ID when Azure returns another casing.
            let new_state = ClusterAddon {
                cluster_id: prior.cluster_id.clone(),
                id: prior.id.clone(),
                ..to_state(cluster_id, &cluster, &prior)
            };
            Some(new_state.to_value())
        }
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            diags.push(arm_error_diagnostic("Reading the AKS cluster failed", &e));
            Some(state.clone())
        }
        Err(_) => {
            diags.error(
                "Timed out reading the AKS cluster",
                format!(
                    "No answer within {}s; raise `timeouts {{ read = ... }}`.",
                    limit.as_secs()
                ),
            );
            Some(state.clone())
        }
    }
}

fn import_cluster_addon(id: &str, diags: &mut Diagnostics) -> Option<Value> {
    if let Err(msg) = parse_cluster_id(id) {
        diags.error(
            "Invalid import ID",
            format!("Import takes the cluster's ID. {msg}"),
        );
        return None;
    }
    let stub = ClusterAddon {
        id: Knowable::Known(id.to_string()),
        cluster_id: Some(id.to_string()),
        ..Default::default()
    };
    Some(stub.to_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addon_key_is_found_whatever_its_casing() {
        let c = json!({"properties": {"addonProfiles": {"azurePolicy": {"enabled": true, "config": {"version": "v2"},
            "identity": {"clientId": "c", "objectId": "o", "resourceId": "r"}}}}});
        assert_eq!(addon_key(&c).as_deref(), Some("azurePolicy"));
        let state = to_state("/x", &c, &ClusterAddon::default());
        assert_eq!(state.enabled, Some(true));
        assert_eq!(state.version.as_deref(), Some("v2"));
        let identity = state.identity.known().expect("identity");
        assert_eq!(identity[0].object_id.as_deref(), Some("o"));
    }

    #[test]
    fn missing_addon_reads_as_disabled() {
        let state = to_state("/x", &json!({"properties": {}}), &ClusterAddon::default());
        assert_eq!(state.enabled, Some(false));
        assert_eq!(state.identity, Knowable::Known(Vec::new()));
    }

    #[test]
    fn cluster_id_must_be_a_cluster() {
        assert!(parse_cluster_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c").is_ok());
        assert!(parse_cluster_id("/subscriptions/s/resourceGroups/rg").is_err());
    }
}
