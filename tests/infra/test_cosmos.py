"""The optional Cosmos DB state store in infra/: serverless, Entra ID only, the containers the adapter expects, a
data-plane role for the app's identity, and app settings that select it when main.bicep's `stateStore` says so."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aos_core.config import AOSConfig
from services.storage import cosmos as adapter
from services.storage.connections import resolve_cosmos_connection
from tests.infra.bicep import (
    INFRA,
    Property,
    declarations,
    object_properties,
    resources,
    string_literal,
    text,
    value_node,
)
from tests.infra.test_app_settings import CLIENT_ID, app_settings

COSMOS = INFRA / "core" / "cosmos.bicep"
MAIN = INFRA / "main.bicep"
# Cosmos DB built-in data-plane roles (https://learn.microsoft.com/azure/cosmos-db/nosql/security/reference-data-plane-roles).
DATA_ROLES = {"Cosmos DB Built-in Data Reader": "00000000-0000-0000-0000-000000000001",
              "Cosmos DB Built-in Data Contributor": "00000000-0000-0000-0000-000000000002"}


def _body(node: Any) -> dict[str, Property]:
    """The properties of a resource or module declaration's object (the one after `=` or after `if (...)`)."""
    return object_properties(node if node.type == "object" else next(c for c in node.children if c.type == "object"))


def _resource(kind: str) -> list[dict[str, Property]]:
    found = []
    for resource_type, node in resources(COSMOS):
        if resource_type.split("@")[0] == kind:
            body = node
            loop = next((c for c in node.children if c.type == "for_statement"), None)
            if loop is not None:  # [for principal in principals: {...}]
                body = next(c for c in loop.children if c.type == "object")
            found.append(_body(body))
    return found


def _json(node: Any) -> Any:
    """A Bicep literal (object, array, string, bool, number) as Python; None for anything computed."""
    if node.type == "object":
        return {key: _json(prop.value) for key, prop in object_properties(node).items()}
    if node.type == "array":
        return [_json(child) for child in node.named_children if child.type != "comment"]
    if node.type == "string":
        return string_literal(node)
    if node.type == "boolean":
        return text(node) == "true"
    return None


def test_the_account_is_serverless_entra_only_and_tls12() -> None:
    [account] = _resource("Microsoft.DocumentDB/databaseAccounts")
    props = _json(account["properties"].value)
    assert props["disableLocalAuth"] is True  # no account keys: the identity's token is the only way in
    assert props["disableKeyBasedMetadataWriteAccess"] is True
    assert {"name": "EnableServerless"} in props["capabilities"]
    assert props["minimalTlsVersion"] == "Tls12"
    assert "listKeys" not in COSMOS.read_text() and "listConnectionStrings" not in COSMOS.read_text()


def test_the_containers_are_the_ones_the_adapter_uses() -> None:
    containers = {_json(c["properties"].value)["resource"]["id"]: _json(c["properties"].value)["resource"]
                  for c in _resource("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")}
    assert set(containers) == {adapter.STATE_CONTAINER, adapter.BLOB_CONTAINER}
    assert containers[adapter.STATE_CONTAINER]["partitionKey"]["paths"] == ["/id"]
    assert containers[adapter.BLOB_CONTAINER]["partitionKey"]["paths"] == ["/container"]
    assert containers[adapter.STATE_CONTAINER]["indexingPolicy"] == adapter.STATE_INDEXING
    assert containers[adapter.BLOB_CONTAINER]["indexingPolicy"] == adapter.BLOB_INDEXING
    database = declarations(COSMOS, "parameter_declaration")["databaseName"]
    assert string_literal(value_node(database)) == adapter.DEFAULT_DATABASE == AOSConfig().storage.cosmos_database


def test_the_app_identity_and_the_user_get_the_data_contributor_role_on_the_account() -> None:
    roles = {name: string_literal(prop.value)
             for name, prop in object_properties(value_node(declarations(COSMOS, "variable_declaration")["dataRoles"]))
             .items()}
    for name, role_id in roles.items():
        assert DATA_ROLES.get(name) == role_id, f"{name}: not the built-in data-plane role id"
    variables = declarations(COSMOS, "variable_declaration")
    assert string_literal(value_node(variables["appDataRole"])) == "Cosmos DB Built-in Data Contributor"
    assert text(value_node(variables["principals"])) == (
        "empty(userPrincipalId) ? [appPrincipalId] : [appPrincipalId, userPrincipalId]")
    [assignment] = _resource("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments")
    props = {key: text(prop.value) for key, prop in object_properties(assignment["properties"].value).items()}
    assert props == {"roleDefinitionId": "'${account.id}/sqlRoleDefinitions/${dataRoles[appDataRole]}'",
                     "principalId": "principal", "scope": "account.id"}


def test_main_deploys_cosmos_only_when_the_parameter_selects_it() -> None:
    assert text(declarations(MAIN, "parameter_declaration")["stateStore"]) == "param stateStore string = 'blob'"
    assert re.search(r"@allowed\(\['blob', 'cosmos'\]\)\n(@description\(.*\)\n)?param stateStore ", MAIN.read_text())
    module = declarations(MAIN, "module_declaration")["cosmos"]
    assert "if (useCosmos)" in text(module)
    params = {key: text(prop.value) for key, prop in object_properties(_body(
        next(c for c in module.children if c.type == "if_statement"))["params"].value).items()}
    assert params["appPrincipalId"] == "identity.outputs.principalId" and params["userPrincipalId"] == "principalId"
    api = {key: text(prop.value) for key, prop in object_properties(_body(
        declarations(MAIN, "module_declaration")["api"])["params"].value).items()}
    assert api["storageBackend"] == "useCosmos ? 'cosmos' : 'azure'"
    assert api["cosmosEndpoint"] == "useCosmos ? cosmos.outputs.endpoint : ''"


def test_the_deployed_cosmos_settings_build_an_identity_based_cosmos_store(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = app_settings()
    assert text(settings["AOS_STORAGE__BACKEND"].value) == "storageBackend"
    assert text(settings["CosmosDBConnection__accountEndpoint"].value) == "cosmosEndpoint"
    assert "CosmosDBConnection" not in settings  # never a key-bearing connection string
    # As Azure fills them in when stateStore is 'cosmos'.
    computed = {"storageBackend": "cosmos", "cosmosEndpoint": "https://cosmos-aos-x.documents.azure.com:443/",
                "cosmosDatabaseName": adapter.DEFAULT_DATABASE, "identityClientId": CLIENT_ID}
    env = {key: prop.literal if prop.literal is not None else computed.get(text(prop.value), "")
           for key, prop in settings.items()}
    for key, value in env.items():
        if key.startswith("AOS_STORAGE__"):
            monkeypatch.setenv(key, value)
    config = AOSConfig()
    assert config.storage.backend == "cosmos"
    connection = resolve_cosmos_connection(config.storage.cosmos_connection, env)
    assert connection.key is None and connection.identity is not None
    assert connection.identity.managed and connection.identity.client_id == CLIENT_ID
    assert connection.endpoint == computed["cosmosEndpoint"]
