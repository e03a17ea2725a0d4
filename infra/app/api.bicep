// The function app on a Flex Consumption (FC1) plan: Python 3.11, running as the user-assigned identity,
// deployment package in a blob container read with that identity, every connection identity-based.
param name string
param planName string
param location string
param tags object = {}
param identityId string
param identityClientId string
@description('Blob, queue and table endpoints of the storage account (https://<account>.<service>.core.windows.net/).')
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param serviceBusFullyQualifiedNamespace string
param keyVaultUri string
param applicationInsightsName string
param eventsTopicName string
param messagesTopicName string
param subscriptionName string
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100
@description('NCRONTAB schedule of the `tick` timer (seconds first).')
param tickSchedule string = '0 * * * * *'
@description('Durable Functions task hub name (letters and digits).')
param durableHubName string = 'aoshub'
@description('Roles of a caller holding a function key: reader, operator or admin.')
param keyRoles string = 'admin'
@allowed(['azure', 'cosmos'])
@description('AOS_STORAGE__BACKEND: agent state on Blob Storage (azure) or Cosmos DB (cosmos, core/cosmos.bicep).')
param storageBackend string = 'azure'
@description('Cosmos DB account endpoint (https://<account>.documents.azure.com:443/) when storageBackend is cosmos.')
param cosmosEndpoint string = ''
param cosmosDatabaseName string = 'aos'
@description('More app settings as [{ name, value }], e.g. AOS_* tuning such as AOS_DISPATCH__MAX_LIVE_AGENTS.')
param extraAppSettings array = []

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(appSettings, extraAppSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Every setting the app reads on Azure, as name/value pairs (tests/infra checks this list against the code's
// settings model and local.settings.json.example). A literal array, not a loop over an object: values that
// come from resources may not feed a for-expression (BCP178). No secret, key or credential-bearing connection string: connections are
// identity-based; the Application Insights connection string only names the resource and its ingestion
// endpoint, and local auth is disabled there, so ingestion needs the identity's Entra token.
var appSettings = [
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storageBlobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storageQueueEndpoint
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storageTableEndpoint
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'ServiceBusConnection__fullyQualifiedNamespace'
    value: serviceBusFullyQualifiedNamespace
  }
  {
    name: 'ServiceBusConnection__credential'
    value: 'managedidentity'
  }
  {
    name: 'ServiceBusConnection__clientId'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
  {
    name: 'AOS_EVENTS_TOPIC'
    value: eventsTopicName
  }
  {
    name: 'AOS_EVENTS_SUBSCRIPTION'
    value: subscriptionName
  }
  {
    name: 'AOS_MESSAGES_TOPIC'
    value: messagesTopicName
  }
  {
    name: 'AOS_MESSAGES_SUBSCRIPTION'
    value: subscriptionName
  }
  {
    name: 'AOS_TICK_SCHEDULE'
    value: tickSchedule
  }
  {
    name: 'AOS_DURABLE_HUB'
    value: durableHubName
  }
  {
    name: 'AOS_STORAGE__BACKEND'
    value: storageBackend
  }
  {
    name: 'AOS_STORAGE__CONNECTION'
    value: 'AzureWebJobsStorage'
  }
  {
    name: 'AOS_STORAGE__COSMOS_CONNECTION'
    value: 'CosmosDBConnection'
  }
  {
    name: 'AOS_STORAGE__COSMOS_DATABASE'
    value: cosmosDatabaseName
  }
  {
    name: 'CosmosDBConnection__accountEndpoint'
    value: cosmosEndpoint
  }
  {
    name: 'CosmosDBConnection__credential'
    value: 'managedidentity'
  }
  {
    name: 'CosmosDBConnection__clientId'
    value: identityClientId
  }
  {
    name: 'AOS_MESSAGING__BACKEND'
    value: 'servicebus'
  }
  {
    name: 'AOS_MESSAGING__CONNECTION'
    value: 'ServiceBusConnection'
  }
  {
    name: 'AOS_KEYVAULT__URL'
    value: keyVaultUri
  }
  {
    name: 'AOS_KEYVAULT__CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'AOS_GOVERNANCE__AUDIT_BACKEND'
    value: 'table'
  }
  {
    name: 'AOS_GOVERNANCE__AUDIT_TABLE'
    value: 'aosaudit'
  }
  {
    name: 'AOS_AUTH__KEY_ROLES'
    value: keyRoles
  }
  {
    name: 'AOS_API__MAX_BODY_BYTES'
    value: '1048576'
  }
  {
    name: 'AOS_API__MAX_WAIT'
    value: '30'
  }
  {
    name: 'AOS_API__MAX_BATCH'
    value: '100'
  }
  {
    name: 'AOS_API__EVENT_RETENTION'
    value: '604800'
  }
]

output name string = functionApp.name
output uri string = 'https://${functionApp.properties.defaultHostName}'
