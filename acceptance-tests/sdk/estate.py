"""Drives the emulator with the Azure SDK for Python, as a platform team's script would:
the local-accounts Deny built-in refuses a cluster PUT; the add-on DeployIfNotExists built-in,
assigned at a management group above two subscriptions, remediates only once its identity
holds the definition's roles (granted by hand); a deployment runs through ARM directly.

Usage: estate.py SPEC_DIR (shared/specs/azure-policy). Environment: the emulator's env.sh.
Prints one JSON line with what it saw; exits non-zero (with a traceback) when Azure's
behaviour is not what it found.
"""

import json
import os
import sys
import time
import uuid

from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.policyinsights import PolicyInsightsClient
from azure.mgmt.resource.deployments import DeploymentsMgmtClient
from azure.mgmt.resource.policy import PolicyClient
from azure.mgmt.resource.resources import ResourceManagementClient

ENDPOINT = os.environ["ARM_RESOURCE_MANAGER_ENDPOINT"]
SCOPES = ["https://management.azure.com/.default"]
SUBS = os.environ["AKSPOLICY_EMULATOR_SUBSCRIPTION_IDS"].split()
MG = "aks-platform"
MG_ID = f"/providers/Microsoft.Management/managementGroups/{MG}"
# The emulator's operations finish in about a second; the SDK's default pause is 30 s.
POLL = 0.2


def credential():
    return ClientSecretCredential(
        os.environ["ARM_TENANT_ID"],
        os.environ["ARM_CLIENT_ID"],
        os.environ["ARM_CLIENT_SECRET"],
        authority=os.environ["ARM_ACTIVE_DIRECTORY_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )


def client(kind, cred, sub):
    return kind(cred, sub, base_url=ENDPOINT, credential_scopes=SCOPES)


def builtin_id(spec_dir, file_name):
    path = os.path.join(spec_dir, "built-in-policies", "policyDefinitions", "Kubernetes", file_name)
    with open(path, encoding="utf-8") as f:
        return json.load(f)["id"]


def cluster_body(name, disable_local_accounts):
    return {
        "location": "westeurope",
        "tags": {"team": "platform"},
        "properties": {
            "dnsPrefix": name,
            "disableLocalAccounts": disable_local_accounts,
            "agentPoolProfiles": [
                {"name": "system", "count": 2, "vmSize": "Standard_D4s_v5", "mode": "System"}
            ],
        },
    }


def wait_remediation(insights, name):
    for _ in range(300):
        r = insights.remediations.get_at_management_group(MG, name)
        if r.provisioning_state in ("Succeeded", "Failed", "Canceled"):
            return r
        time.sleep(0.1)
    raise AssertionError(f"remediation {name} never finished")


def main():
    spec_dir = sys.argv[1]
    cred = credential()
    seen = {}
    groups = [client(ResourceManagementClient, cred, s) for s in SUBS]
    aks = [client(ContainerServiceClient, cred, s) for s in SUBS]
    policy = client(PolicyClient, cred, SUBS[0])

    # Management group above both subscriptions, through ARM's own API.
    mg_client = groups[0]._client
    for path in [MG_ID] + [f"{MG_ID}/subscriptions/{s}" for s in SUBS]:
        req = mg_client.put(f"{ENDPOINT.rstrip('/')}{path}?api-version=2021-04-01", content=b"{}")
        req.headers["Content-Type"] = "application/json"
        resp = mg_client._pipeline.run(req).http_response
        assert resp.status_code in (200, 202), (path, resp.status_code, resp.text())

    for i, g in enumerate(groups):
        g.resource_groups.create_or_update(f"fleet-{i}", {"location": "westeurope"})

    # The local-accounts Deny built-in, not known to the emulator by id.
    local = builtin_id(spec_dir, "AKS_DisableLocalAccounts_Deny.json")
    policy.policy_assignments.create(
        f"/subscriptions/{SUBS[0]}",
        "no-local-accounts",
        {"properties": {"policyDefinitionId": local, "parameters": {"effect": {"value": "Deny"}}}},
    )
    try:
        aks[0].managed_clusters.begin_create_or_update(
            "fleet-0", "local-on", cluster_body("local-on", False), polling_interval=POLL
        ).result()
        raise AssertionError("a cluster with local accounts was admitted")
    except HttpResponseError as e:
        assert e.error.code == "RequestDisallowedByPolicy", e
        seen["deny"] = e.error.code

    clusters = []
    for i, c in enumerate(aks):
        created = c.managed_clusters.begin_create_or_update(
            f"fleet-{i}", f"aks-{i}", cluster_body(f"aks-{i}", True), polling_interval=POLL
        ).result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        clusters.append((c, f"fleet-{i}", f"aks-{i}"))

    # The add-on DINE at the management group.
    dine = builtin_id(spec_dir, "AKS_AzurePolicyAddOn_DINE.json")
    mg_policy = policy.policy_assignments.create(
        MG_ID,
        "deploy-policy-addon",
        {"location": "westeurope", "identity": {"type": "SystemAssigned"},
         "properties": {"policyDefinitionId": dine}},
    )
    principal = mg_policy.identity.principal_id
    insights = client(PolicyInsightsClient, cred, SUBS[0])
    insights.remediations.create_or_update_at_management_group(
        MG, "without-roles", {"properties": {"policyAssignmentId": mg_policy.id}}
    )
    failed = wait_remediation(insights, "without-roles")
    assert failed.provisioning_state == "Failed", failed.provisioning_state
    errors = sorted(
        d.error.code for d in insights.remediations.list_deployments_at_management_group(MG, "without-roles")
    )
    assert errors == ["AuthorizationFailed", "AuthorizationFailed"], errors
    seen["without_roles"] = errors

    # Roles by hand, as an azurerm or CLI user would grant them.
    definition = policy.policy_definitions.get_built_in(dine.rsplit("/", 1)[-1])
    roles = definition.policy_rule["then"]["details"]["roleDefinitionIds"]
    auth = client(AuthorizationManagementClient, cred, SUBS[0])
    for role in roles:
        role_definition = auth.role_definitions.get(MG_ID, role.rsplit("/", 1)[-1])
        assert role_definition.role_type == "BuiltInRole", role_definition
        auth.role_assignments.create(
            MG_ID, str(uuid.uuid4()), {"role_definition_id": role, "principal_id": principal}
        )
    insights.remediations.create_or_update_at_management_group(
        MG, "with-roles", {"properties": {"policyAssignmentId": mg_policy.id}}
    )
    done = wait_remediation(insights, "with-roles")
    assert done.provisioning_state == "Succeeded", done.provisioning_state
    assert done.deployment_status.successful_deployments == 2, done.deployment_status
    for c, rg, name in clusters:
        for _ in range(100):
            cluster = c.managed_clusters.get(rg, name)
            if cluster.provisioning_state == "Succeeded":
                break
            time.sleep(0.1)
        profile = {k.lower(): v for k, v in (cluster.addon_profiles or {}).items()}
        assert profile["azurepolicy"].enabled, cluster.addon_profiles
        assert cluster.agent_pool_profiles[0].count == 2, cluster.agent_pool_profiles
    seen["remediated"] = done.deployment_status.successful_deployments

    # A deployment through ARM directly: an outer template tags a resource group's cluster.
    deployments = client(DeploymentsMgmtClient, cred, SUBS[1])
    template = {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"name": {"type": "string"}},
        "resources": [],
        "outputs": {
            "kubernetesVersion": {
                "type": "string",
                "value": "[reference(resourceId('Microsoft.ContainerService/managedClusters', parameters('name')), '2024-10-01').kubernetesVersion]",
            }
        },
    }
    result = deployments.deployments.begin_create_or_update(
        "fleet-1",
        "read-cluster",
        {"properties": {"mode": "Incremental", "template": template, "parameters": {"name": {"value": "aks-1"}}}},
        polling_interval=POLL,
    ).result()
    assert result.properties.provisioning_state == "Succeeded", result.properties
    seen["deployment_output"] = result.properties.outputs["kubernetesVersion"]["value"]
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
