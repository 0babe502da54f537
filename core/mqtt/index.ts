// The one owner of MQTT connection options, for the gateway and the backend alike.
export * from './connection.js';
export * from './reconnect.js';
