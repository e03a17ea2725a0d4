// Cosmos DB for NoSQL, serverless, for agent state when main.bicep's `stateStore` is 'cosmos'
// (AOS_STORAGE__BACKEND=cosmos, services/storage/cosmos.py). Entra ID only: local (key) auth is disabled and
// the app's identity holds a data-plane role on the account. Data-plane roles cannot create databases or
// containers, so they are created here, with the partition keys and indexing the adapter expects.
param name string
param location string
param tags object = {}
@description('Database of the state and blobs containers (AOS_STORAGE__COSMOS_DATABASE).')
param databaseName string = 'aos'
@description('Principal id of the user-assigned managed identity the function app runs as.')
param appPrincipalId string
@description('Object id of the deploying user or CI principal; empty: no user role (to run the app locally).')
param userPrincipalId string = ''

// Built-in Cosmos DB data-plane role definitions, by name (a data-plane RBAC id, not an Azure RBAC one):
// https://learn.microsoft.com/azure/cosmos-db/nosql/security/reference-data-plane-roles
var dataRoles = {
  'Cosmos DB Built-in Data Contributor': '00000000-0000-0000-0000-000000000002'
}
// Read, create, replace, delete and query items, and read account metadata: what the adapter does, nothing more.
var appDataRole = 'Cosmos DB Built-in Data Contributor'
var principals = empty(userPrincipalId) ? [appPrincipalId] : [appPrincipalId, userPrincipalId]

// Serverless: billed per request unit and GB stored, nothing while idle (one region, no provisioned throughput).
resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

// Documents: id = SHA-256 of the key, which is also the partition key; only sortKey is indexed (prefix listing).
resource stateContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'state'
  properties: {
    resource: {
      id: 'state'
      partitionKey: {
        paths: ['/id']
        kind: 'Hash'
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        includedPaths: [
          {
            path: '/sortKey/?'
          }
        ]
        excludedPaths: [
          {
            path: '/*'
          }
        ]
      }
    }
  }
}

// Small blobs (up to 1.5 MB each), partitioned by the blob container name.
resource blobContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'blobs'
  properties: {
    resource: {
      id: 'blobs'
      partitionKey: {
        paths: ['/container']
        kind: 'Hash'
      }
      indexingPolicy: {
        indexingMode: 'consistent'
        includedPaths: [
          {
            path: '/sortKey/?'
          }
          {
            path: '/container/?'
          }
        ]
        excludedPaths: [
          {
            path: '/*'
          }
        ]
      }
    }
  }
}

resource dataAccess 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = [for principal in principals: {
  parent: account
  name: guid(account.id, principal, dataRoles[appDataRole])
  properties: {
    roleDefinitionId: '${account.id}/sqlRoleDefinitions/${dataRoles[appDataRole]}'
    principalId: principal
    scope: account.id
  }
}]

output name string = account.name
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
