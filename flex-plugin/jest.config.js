/**
 * `flex-plugin test` (Jest 27, @twilio/flex-plugin-test's preset) passes its configuration here to be
 * completed: @twilio/flex-ui and @twilio/flex-plugin are replaced by mocks of their boundaries
 * (src/__mocks__), since the real Flex UI cannot run outside Flex.
 */
module.exports = (config) => ({
  ...config,
  moduleNameMapper: {
    ...config.moduleNameMapper,
    '^@twilio/flex-ui$': '<rootDir>/src/__mocks__/@twilio/flex-ui.tsx',
    '^@twilio/flex-plugin$': '<rootDir>/src/__mocks__/@twilio/flex-plugin.ts',
  },
  // jest-dom's matchers and jest-axe's toHaveNoViolations (the preset looks for setupTests.js only).
  setupFilesAfterEnv: ['<rootDir>/src/setupTests.ts'],
  testEnvironment: 'jsdom',
  // Paste's dialogs and axe are slow on a cold cache with two cores: a test gets 20 s rather than 5.
  testTimeout: 20000,
  testPathIgnorePatterns: ['/node_modules/', '/harness/'],
});
