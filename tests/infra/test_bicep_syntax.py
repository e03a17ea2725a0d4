"""The azd project parses: every .bicep has no error nodes; azure.yaml and the parameters agree with main.bicep."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.infra.bicep import (
    INFRA,
    ROOT,
    bicep_files,
    declarations,
    object_properties,
    parse,
    parse_source,
    string_literal,
    syntax_errors,
    text,
    walk,
)

MAIN = INFRA / "main.bicep"


def test_the_grammar_reports_broken_bicep() -> None:
    # Guards the check below against a grammar that accepts anything.
    broken = b"param name string =\nresource r 'Microsoft.Web/sites@2024-04-01' = {\n  name: \n"
    assert syntax_errors(parse_source(broken))


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses_without_error_nodes(path: Path) -> None:
    assert syntax_errors(parse(path)) == []


def test_the_expected_modules_exist() -> None:
    names = {str(p.relative_to(INFRA)) for p in bicep_files()}
    assert {"main.bicep", "app/api.bicep", "app/rbac.bicep", "core/storage.bicep", "core/servicebus.bicep",
            "core/keyvault.bicep", "core/monitoring.bicep", "core/identity.bicep"} <= names


def test_main_targets_the_subscription_and_creates_the_resource_group() -> None:
    root = parse(MAIN).root_node
    scopes = [string_literal(n.named_children[0]) for n in root.children if n.type == "target_scope_assignment"]
    assert scopes == ["subscription"]
    types = {text(n) for n in walk(root) if n.type == "string" and "Microsoft.Resources/resourceGroups@" in text(n)}
    assert types, "main.bicep declares no resource group"


def test_every_module_path_exists() -> None:
    for path in bicep_files():
        for node in parse(path).root_node.children:
            if node.type == "module_declaration":
                target = string_literal(next(c for c in node.children if c.type == "string"))
                assert target is not None and (path.parent / target).is_file(), f"{path.name}: module {target}"


def test_azure_yaml_deploys_this_folder_as_a_python_function_app() -> None:
    project = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    api = project["services"]["api"]
    assert (api["project"], api["language"], api["host"]) == (".", "python", "function")
    assert project.get("infra", {}).get("path", "infra") == "infra"
    # azd finds the app to deploy by this tag.
    assert "'azd-service-name': 'api'" in (INFRA / "app" / "api.bicep").read_text(encoding="utf-8")


def test_parameters_file_sets_only_parameters_main_declares() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = declarations(MAIN, "parameter_declaration")
    assert set(parameters) <= set(declared)
    for name in ("environmentName", "location", "principalId"):
        assert re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", parameters[name]["value"]), name
    required = {name for name, node in declared.items() if not any(c.type == "=" for c in node.children)}
    assert required <= set(parameters), f"main.bicep parameters azd cannot fill: {required - set(parameters)}"


def test_abbreviations_used_by_main_exist() -> None:
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text(encoding="utf-8"))
    used = set(re.findall(r"abbrs\.(\w+)", MAIN.read_text(encoding="utf-8")))
    assert used and used <= set(abbreviations), used - set(abbreviations)


def test_flex_consumption_python_311_with_identity_authenticated_package() -> None:
    api = (INFRA / "app" / "api.bicep").read_text(encoding="utf-8")
    plan = re.search(r"sku: \{\s*name: '(\w+)'\s*tier: '(\w+)'", api)
    assert plan is not None and plan.groups() == ("FC1", "FlexConsumption")
    assert re.search(r"runtime: \{\s*name: 'python'\s*version: '3.11'", api)
    assert re.search(r"type: 'blobContainer'[\s\S]*?authentication: \{\s*type: 'UserAssignedIdentity'", api)
    params = declarations(INFRA / "app" / "api.bicep", "parameter_declaration")
    assert {"instanceMemoryMB", "maximumInstanceCount"} <= set(params)


def test_storage_service_bus_key_vault_and_monitoring_are_keyless() -> None:
    def props(module: str, resource_type: str) -> dict[str, str]:
        path = INFRA / "core" / module
        node = next(n for n in walk(parse(path).root_node)
                    if n.type == "resource_declaration" and resource_type in text(n.children[2]))
        body = next(c for c in node.children if c.type == "object")
        inner = object_properties(object_properties(body)["properties"].value)
        return {key: text(prop.value) for key, prop in inner.items()}

    storage = props("storage.bicep", "Microsoft.Storage/storageAccounts@")
    assert (storage["allowSharedKeyAccess"], storage["allowBlobPublicAccess"], storage["minimumTlsVersion"]) == (
        "false", "false", "'TLS1_2'")
    assert props("servicebus.bicep", "Microsoft.ServiceBus/namespaces@")["disableLocalAuth"] == "true"
    assert props("keyvault.bicep", "Microsoft.KeyVault/vaults@")["enableRbacAuthorization"] == "true"
    assert props("monitoring.bicep", "Microsoft.Insights/components@")["DisableLocalAuth"] == "true"
    workspace = (INFRA / "core" / "monitoring.bicep").read_text(encoding="utf-8")
    assert re.search(r"features: \{\s*disableLocalAuth: true", workspace)


def test_service_bus_subscriptions_dead_letter_and_bound_deliveries() -> None:
    path = INFRA / "core" / "servicebus.bicep"
    subscriptions = [n for n in parse(path).root_node.children if n.type == "resource_declaration"
                     and "/topics/subscriptions@" in text(n.children[2])]
    assert len(subscriptions) == 2  # events and direct messages
    for node in subscriptions:
        body = object_properties(next(c for c in node.children if c.type == "object"))
        inner = object_properties(body["properties"].value)
        assert text(inner["deadLetteringOnMessageExpiration"].value) == "true"
        assert text(inner["maxDeliveryCount"].value) == "maxDeliveryCount"
