// Data-plane role assignments, each on the one resource it is needed for (least privilege):
// the app's managed identity, and optionally the deploying user so the app can run locally against
// the same resources with DefaultAzureCredential (`az login` / `azd auth login`).
param storageAccountName string
param serviceBusNamespaceName string
param keyVaultName string
param applicationInsightsName string
@description('Principal id of the user-assigned managed identity the function app runs as.')
param appPrincipalId string
@description('Object id of the deploying user or CI principal; empty: no user roles.')
param userPrincipalId string = ''
@allowed(['User', 'ServicePrincipal', 'Group'])
param userPrincipalType string = 'User'

// Built-in role definition ids, by role name (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  'Storage Blob Data Owner': 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  'Storage Queue Data Contributor': '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  'Storage Table Data Contributor': '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  'Azure Service Bus Data Receiver': '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  'Azure Service Bus Data Sender': '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  'Key Vault Secrets User': '4633458b-17de-408a-b874-0445c86b69e6'
  'Key Vault Secrets Officer': 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  'Monitoring Metrics Publisher': '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Blob Data Owner (not Contributor): the Functions host and Durable Functions manage blob leases and containers.
var storageRoles = ['Storage Blob Data Owner', 'Storage Queue Data Contributor', 'Storage Table Data Contributor']
var serviceBusRoles = ['Azure Service Bus Data Receiver', 'Azure Service Bus Data Sender']
var appKeyVaultRoles = ['Key Vault Secrets User']
// The user also writes secrets (`az keyvault secret set`); the app only reads them.
var userKeyVaultRoles = ['Key Vault Secrets Officer']
var monitoringRoles = ['Monitoring Metrics Publisher']
var userStorageRoles = empty(userPrincipalId) ? [] : storageRoles
var userServiceBusRoles = empty(userPrincipalId) ? [] : serviceBusRoles
var userVaultRoles = empty(userPrincipalId) ? [] : userKeyVaultRoles
var userMonitoringRoles = empty(userPrincipalId) ? [] : monitoringRoles

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusNamespaceName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource appStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoles: {
  name: guid(storage.id, appPrincipalId, roles[role])
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appServiceBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in serviceBusRoles: {
  name: guid(serviceBus.id, appPrincipalId, roles[role])
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in appKeyVaultRoles: {
  name: guid(vault.id, appPrincipalId, roles[role])
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appMonitoring 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in monitoringRoles: {
  name: guid(applicationInsights.id, appPrincipalId, roles[role])
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource userStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in userStorageRoles: {
  name: guid(storage.id, userPrincipalId, roles[role])
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]

resource userServiceBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in userServiceBusRoles: {
  name: guid(serviceBus.id, userPrincipalId, roles[role])
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]

resource userVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in userVaultRoles: {
  name: guid(vault.id, userPrincipalId, roles[role])
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]

resource userMonitoring 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in userMonitoringRoles: {
  name: guid(applicationInsights.id, userPrincipalId, roles[role])
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[role])
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]
