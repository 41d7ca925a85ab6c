// Copy to appConfig.js (not committed) for `twilio flex:plugins:start`, which serves Flex UI locally
// with this plugin loaded.
var appConfig = {
  pluginService: {
    enabled: true,
    url: '/plugins',
  },
  logLevel: 'info',
};
