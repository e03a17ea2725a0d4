"""The function app's Bicep app settings cover every setting the app reads, identity-based and without secrets.

"Settings the app reads" is derived now, from the code: every field of the AOSConfig settings model as its
environment name (AOS_ prefix, `__` nesting), every key of local.settings.json.example, every `%NAME%` binding
expression in function_app.py and host.json, and the connections the triggers and backends name. A setting the
Bicep does not set must be listed, with its reason, in infra/app/settings-not-deployed.json; a whole new section
of the settings model therefore fails here until someone decides how it is set on Azure.
"""

from __future__ import annotations

import json
import re
import types
import typing
from fnmatch import fnmatchcase
from typing import Any

import pytest
from pydantic import BaseModel

from aos_core.config import ENV_PREFIX, AOSConfig, MessagingSettings, StorageSettings
from services.storage.connections import resolve_servicebus_connection, resolve_storage_connection
from tests.infra.bicep import (
    INFRA,
    ROOT,
    Property,
    declarations,
    object_properties,
    string_literal,
    text,
    value_node,
)

API = INFRA / "app" / "api.bicep"
NOT_DEPLOYED = INFRA / "app" / "settings-not-deployed.json"
CLIENT_ID = "00000000-0000-4000-8000-000000000001"
# Settings Flex Consumption rejects or ignores (it deploys from the blob container and sets the runtime itself).
FLEX_REJECTS = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME_VERSION",
                "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE",
                "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "WEBSITE_NODE_DEFAULT_VERSION"}


def app_settings() -> dict[str, Property]:
    """`appSettings` in api.bicep (an array of `{ name, value }`) by setting name."""
    array = value_node(declarations(API, "variable_declaration")["appSettings"])
    assert array.type == "array"
    settings: dict[str, Property] = {}
    for item in array.named_children:
        pair = object_properties(item)
        name = pair["name"].literal
        assert name is not None and set(pair) == {"name", "value"}, text(item)
        assert name not in settings, f"{name} is set twice"
        settings[name] = Property(name, pair["value"].value)
    return settings


def not_deployed() -> dict[str, str]:
    data = json.loads(NOT_DEPLOYED.read_text(encoding="utf-8"))
    return {name: reason for name, reason in data.items() if not name.startswith("_")}


def model_setting_names(model: type[BaseModel] = AOSConfig, prefix: str = ENV_PREFIX) -> set[str]:
    names: set[str] = set()
    for field_name, field in model.model_fields.items():
        # A section is a model field (or `Model | None`); a list of models is one setting holding JSON.
        options = typing.get_args(field.annotation) if isinstance(field.annotation, types.UnionType) else ()
        sections = [t for t in (field.annotation, *options) if isinstance(t, type) and issubclass(t, BaseModel)]
        if sections:
            names |= model_setting_names(sections[0], f"{prefix}{field_name.upper()}__")
        else:
            names.add(f"{prefix}{field_name.upper()}")
    return names


def settings_the_app_reads() -> set[str]:
    example = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    bindings = (ROOT / "function_app.py").read_text(encoding="utf-8") + (ROOT / "host.json").read_text(encoding="utf-8")
    expressions = set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", bindings))
    connections = set(re.findall(r"connection=\"([^\"]+)\"", bindings))
    connections |= {StorageSettings().connection, StorageSettings().cosmos_connection, MessagingSettings().connection}
    return set(example) | model_setting_names() | expressions | connections


def _covered_by(name: str, entries: dict[str, str]) -> str | None:
    return next((pattern for pattern in entries if fnmatchcase(name, pattern)), None)


def test_the_derived_list_really_comes_from_the_code() -> None:
    reads = settings_the_app_reads()
    # Spot checks that each source contributed: the model, the example file, the bindings, the connections.
    assert {"AOS_STORAGE__BACKEND", "AOS_KEYVAULT__URL", "AOS_API__MAX_WAIT"} <= reads
    assert {"AOS_DURABLE_HUB", "AOS_TICK_SCHEDULE", "APPLICATIONINSIGHTS_CONNECTION_STRING"} <= reads
    assert {"AzureWebJobsStorage", "ServiceBusConnection"} <= reads


def test_every_setting_the_app_reads_is_deployed_or_listed_with_a_reason() -> None:
    deployed = app_settings()
    entries = not_deployed()
    missing = []
    for name in sorted(settings_the_app_reads()):
        identity_based = any(key.startswith(f"{name}__") for key in deployed)  # AzureWebJobsStorage__blobServiceUri
        if name not in deployed and not identity_based and _covered_by(name, entries) is None:
            missing.append(name)
    assert not missing, (f"settings the app reads that infra/app/api.bicep does not set: {missing}; set them in "
                         f"`appSettings` or list them with the reason in {NOT_DEPLOYED.name}")


def test_the_not_deployed_list_is_current_and_explained() -> None:
    reads = settings_the_app_reads()
    deployed = app_settings()
    for pattern, reason in not_deployed().items():
        assert len(reason.strip()) > 20, f"{pattern}: give the reason"
        matches = {name for name in reads if fnmatchcase(name, pattern)}
        assert matches, f"{pattern}: the app reads no such setting any more; drop it from {NOT_DEPLOYED.name}"
        assert not matches & set(deployed), f"{pattern}: listed as not deployed but api.bicep sets it"


def test_no_deployed_aos_setting_is_a_typo() -> None:
    reads = settings_the_app_reads()
    unknown = [key for key in app_settings() if key.startswith(ENV_PREFIX) and key not in reads]
    assert not unknown, f"app settings the app never reads (typo?): {unknown}"


def test_connections_are_identity_based_with_the_user_assigned_identity() -> None:
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings and "ServiceBusConnection" not in settings
    for connection in ("AzureWebJobsStorage", "ServiceBusConnection"):
        assert settings[f"{connection}__credential"].literal == "managedidentity"
        assert text(settings[f"{connection}__clientId"].value) == "identityClientId"
    for service in ("blob", "queue", "table"):
        assert f"AzureWebJobsStorage__{service}ServiceUri" in settings
    assert "ServiceBusConnection__fullyQualifiedNamespace" in settings
    auth = text(settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].value)
    assert auth == "'ClientId=${identityClientId};Authorization=AAD'"
    assert text(settings["AOS_KEYVAULT__CLIENT_ID"].value) == "identityClientId"


def test_no_setting_flex_consumption_rejects() -> None:
    assert not FLEX_REJECTS & set(app_settings())


def _parameter_defaults() -> dict[str, str]:
    """api.bicep parameters by name -> the literal they get: their own default, else what main.bicep passes."""
    main = INFRA / "main.bicep"
    main_defaults = {name: prop for name, node in declarations(main, "parameter_declaration").items()
                     if (prop := _literal_default(node)) is not None}
    api_module = object_properties(next(c for c in declarations(main, "module_declaration")["api"].children
                                        if c.type == "object"))
    passed = {key: text(prop.value) for key, prop in object_properties(api_module["params"].value).items()}
    resolved: dict[str, str] = {}
    for name, node in declarations(API, "parameter_declaration").items():
        literal = _literal_default(node)
        if literal is None and passed.get(name) in main_defaults:
            literal = main_defaults[passed[name]]
        if literal is not None:
            resolved[name] = literal
    return resolved


def _literal_default(node: Any) -> str | None:
    if not any(child.type == "=" for child in node.children):
        return None
    value = value_node(node)
    return string_literal(value) if value.type == "string" else text(value) if value.type == "number" else None


def _sample_environment() -> dict[str, str]:
    """The Bicep app settings as the app sees them: literals as written, parameters at their defaults (through
    main.bicep), values Azure computes (endpoints, client ids) as it fills them in."""
    parameters = _parameter_defaults()
    samples = {
        "ServiceUri": lambda key: f"https://staos.{key.split('__')[1][:-len('ServiceUri')]}.core.windows.net/",
        "clientId": lambda key: CLIENT_ID,
        "fullyQualifiedNamespace": lambda key: "sb-aos.servicebus.windows.net",
        "AOS_KEYVAULT__URL": lambda key: "https://kv-aos.vault.azure.net/",
        "AOS_KEYVAULT__CLIENT_ID": lambda key: CLIENT_ID,
    }
    env: dict[str, str] = {}
    for key, prop in app_settings().items():
        if prop.literal is not None:
            env[key] = prop.literal
            continue
        if prop.value.type == "identifier" and text(prop.value) in parameters:
            env[key] = parameters[text(prop.value)]
            continue
        sample = next((make for suffix, make in samples.items() if key.endswith(suffix)), None)
        if sample is not None:
            env[key] = sample(key)
    return env


def test_the_deployed_settings_build_a_valid_azure_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _sample_environment()
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)
    config = AOSConfig()
    assert (config.storage.backend, config.messaging.backend) == ("azure", "servicebus")
    assert config.governance.audit_backend == "table"
    assert config.keyvault.url == env["AOS_KEYVAULT__URL"] and config.keyvault.client_id == CLIENT_ID
    assert config.messaging.events_topic == env["AOS_EVENTS_TOPIC"] == "agent.events"
    assert config.messaging.messages_topic == env["AOS_MESSAGES_TOPIC"] == "agent.messages"
    assert env["AOS_EVENTS_SUBSCRIPTION"] == env["AOS_MESSAGES_SUBSCRIPTION"] == "aos-runtime"
    assert env["AOS_DURABLE_HUB"].isalnum() and len(env["AOS_TICK_SCHEDULE"].split()) == 6

    storage = resolve_storage_connection(config.storage.connection, env)
    assert storage.connection_string is None and storage.identity is not None
    assert (storage.identity.managed, storage.identity.client_id) == (True, CLIENT_ID)
    assert storage.url("table") == "https://staos.table.core.windows.net"
    bus = resolve_servicebus_connection(config.messaging.connection, env)
    assert bus.namespace == "sb-aos.servicebus.windows.net" and bus.identity is not None
    assert bus.identity.client_id == CLIENT_ID


# --- no secrets in app settings or outputs -----------------------------------------------------------------

# What would put a key or a credential-bearing connection string into an app setting or an output.
SECRET_PATTERNS = [r"\blist\w*\(", r"listKeys", r"AccountKey", r"SharedAccess", r"primaryKey", r"secondaryKey",
                   r"connection_?string", r"InstrumentationKey", r"\bsas\b", r"password", r"secret\w*\(", r"@secure"]
# The one allowed: the Application Insights connection string names the resource and its ingestion endpoint
# and grants nothing (local auth is disabled; ingestion needs the identity's Entra token).
ALLOWED = {("APPLICATIONINSIGHTS_CONNECTION_STRING", "applicationInsights.properties.ConnectionString")}


def secret_findings(entries: dict[str, str]) -> list[str]:
    found = []
    for name, expression in entries.items():
        if (name, expression) in ALLOWED:
            continue
        for pattern in SECRET_PATTERNS:
            if re.search(pattern, f"{name} {expression}", re.IGNORECASE):
                found.append(f"{name} = {expression} (matches {pattern})")
    return found


def test_the_secret_check_catches_keys() -> None:
    assert secret_findings({"AzureWebJobsStorage": "'AccountKey=${storage.listKeys().keys[0].value}'"})
    assert secret_findings({"BUS": "namespace.listKeys().primaryConnectionString"})
    assert secret_findings({"APPLICATIONINSIGHTS_CONNECTION_STRING": "'InstrumentationKey=...'"}) != []


def _outputs() -> dict[str, str]:
    outputs: dict[str, str] = {}
    for path in sorted(INFRA.rglob("*.bicep")):
        for name, node in declarations(path, "output_declaration").items():
            outputs[f"{path.relative_to(INFRA)}:{name}"] = text(node)
    return outputs


def test_no_key_or_connection_string_in_app_settings() -> None:
    settings: dict[str, Any] = {key: text(prop.value) for key, prop in app_settings().items()}
    assert secret_findings(settings) == []


def test_no_key_or_connection_string_in_outputs() -> None:
    outputs = _outputs()
    assert "main.bicep:SERVICE_API_URI" in outputs
    assert secret_findings(outputs) == []


def test_no_bicep_file_reads_keys_at_all() -> None:
    for path in sorted(INFRA.rglob("*.bicep")):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"\.list\w*\(|\blistKeys\(|listConnectionStrings", source), path.name
