/**
 * Runs @twilio/flex-plugin-scripts' own test script (Jest 27 with @twilio/flex-plugin-test's preset,
 * completed by ./jest.config.js), in the process, as the Twilio CLI's `twilio flex:plugins:test`
 * does. `flex-plugin test` run alone respawns the script with a `--run-script` flag that it then
 * hands on to Jest, which refuses it (flex-plugin-scripts 7.1.2).
 */
require('@twilio/flex-plugin-scripts/dist/scripts/test').default(...process.argv.slice(2));
