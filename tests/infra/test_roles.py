"""Role assignments: built-in role ids match their names, and the identity and the user get the roles they need."""

from __future__ import annotations

import re

from tests.infra.bicep import INFRA, declarations, object_properties, resources, string_literal, text, value_node

RBAC = INFRA / "app" / "rbac.bicep"
# Azure built-in role definition ids, from https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
# (the same in every tenant and cloud).
BUILT_IN = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Azure Service Bus Data Owner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
APP_NEEDS = {
    "storage": {"Storage Blob Data Owner", "Storage Queue Data Contributor", "Storage Table Data Contributor"},
    "serviceBus": {"Azure Service Bus Data Receiver", "Azure Service Bus Data Sender"},
    "vault": {"Key Vault Secrets User"},
    "applicationInsights": {"Monitoring Metrics Publisher"},
}
USER_NEEDS = {**APP_NEEDS, "vault": {"Key Vault Secrets Officer"}}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def role_map() -> dict[str, str]:
    node = value_node(declarations(RBAC, "variable_declaration")["roles"])
    return {name: string_literal(prop.value) or "" for name, prop in object_properties(node).items()}


def role_list(variable: str) -> set[str]:
    """The role names a loop iterates: an array of names, or `empty(x) ? [] : otherArray`."""
    source = text(value_node(declarations(RBAC, "variable_declaration")[variable]))
    if (other := re.fullmatch(r"empty\(\w+\) \? \[\] : (\w+)", source)) is not None:
        return role_list(other.group(1))
    return set(re.findall(r"'([^']+)'", source))


def assignments() -> list[dict[str, str]]:
    out = []
    for resource_type, node in resources(RBAC):
        if not resource_type.startswith("Microsoft.Authorization/roleAssignments@"):
            continue
        source = text(node)
        loop = re.search(r"\[for (\w+) in (\w+):", source)
        fields = dict(re.findall(r"^\s*(scope|principalId|roleDefinitionId|principalType): (.+)$", source, re.M))
        assert loop is not None, f"expected one assignment per role in a loop: {source[:80]}"
        out.append({"var": loop.group(1), "roles": loop.group(2), **fields})
    return out


def test_role_ids_match_the_built_in_role_names() -> None:
    roles = role_map()
    assert roles
    for name, role_id in roles.items():
        assert name in BUILT_IN, f"{name}: not a built-in role this test knows"
        assert role_id == BUILT_IN[name], f"{name}: {role_id} is not its built-in id {BUILT_IN[name]}"


def test_no_role_id_is_written_anywhere_else() -> None:
    # Azure RBAC roles live in rbac.bicep's `roles`; Cosmos DB data-plane roles in cosmos.bicep's `dataRoles`.
    maps = {RBAC: "roles", INFRA / "core" / "cosmos.bicep": "dataRoles"}
    for path in sorted(INFRA.rglob("*.bicep")):
        source = path.read_text(encoding="utf-8")
        if path in maps:
            source = source.replace(text(value_node(declarations(path, "variable_declaration")[maps[path]])), "")
        assert not GUID.findall(source), f"{path.name}: a role id outside the named `{maps.get(path, 'roles')}` map"


def test_every_assignment_resolves_its_role_by_name() -> None:
    for assignment in assignments():
        expected = (f"subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
                    f"roles[{assignment['var']}])")
        assert assignment["roleDefinitionId"] == expected


def _granted(principal: str) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for assignment in assignments():
        if assignment["principalId"] == principal:
            granted.setdefault(assignment["scope"], set()).update(role_list(assignment["roles"]))
    return granted


def test_the_app_identity_gets_exactly_its_roles_each_on_its_resource() -> None:
    assert _granted("appPrincipalId") == APP_NEEDS
    for assignment in assignments():
        if assignment["principalId"] == "appPrincipalId":
            assert assignment["principalType"] == "'ServicePrincipal'"


def test_the_deploying_user_gets_data_roles_to_run_the_app_locally() -> None:
    assert _granted("userPrincipalId") == USER_NEEDS
    # No principal id (CI without a user): no user assignments at all.
    for assignment in assignments():
        if assignment["principalId"] == "userPrincipalId":
            source = text(value_node(declarations(RBAC, "variable_declaration")[assignment["roles"]]))
            assert source.startswith("empty(userPrincipalId) ? [] :")


def test_main_passes_the_identity_and_the_deploying_user() -> None:
    rbac = object_properties(next(c for c in declarations(INFRA / "main.bicep", "module_declaration")["rbac"].children
                                  if c.type == "object"))
    params = {key: text(prop.value) for key, prop in object_properties(rbac["params"].value).items()}
    assert params["appPrincipalId"] == "identity.outputs.principalId"
    assert params["userPrincipalId"] == "principalId"
