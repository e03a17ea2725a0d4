// Service Bus: the events topic and the direct-messages topic, each with the runtime subscription the
// function app's triggers read. Entra ID only (disableLocalAuth): no SAS keys exist to leak.
param name string
param location string
param tags object = {}
param eventsTopicName string
param messagesTopicName string
param subscriptionName string
@description('Deliveries before a message is dead-lettered (the app raises on messages it can never handle).')
@minValue(1)
param maxDeliveryCount int = 10
@description('Peek-lock duration; the Functions host renews the lock while a message is being handled.')
param lockDuration string = 'PT1M'
param messageTimeToLive string = 'P14D'

// Standard is the smallest tier with topics; Premium adds private endpoints and customer-managed keys.
resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// Message ids are event ids, so duplicate detection drops a resent event within the window.
resource eventsTopic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: namespace
  name: eventsTopicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    defaultMessageTimeToLive: messageTimeToLive
    enableBatchedOperations: true
  }
}

resource eventsSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: eventsTopic
  name: subscriptionName
  properties: {
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    deadLetteringOnMessageExpiration: true
    deadLetteringOnFilterEvaluationExceptions: true
    defaultMessageTimeToLive: messageTimeToLive
    enableBatchedOperations: true
  }
}

resource messagesTopic 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: namespace
  name: messagesTopicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    defaultMessageTimeToLive: messageTimeToLive
    enableBatchedOperations: true
  }
}

resource messagesSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: messagesTopic
  name: subscriptionName
  properties: {
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    deadLetteringOnMessageExpiration: true
    deadLetteringOnFilterEvaluationExceptions: true
    defaultMessageTimeToLive: messageTimeToLive
    enableBatchedOperations: true
  }
}

output id string = namespace.id
output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
