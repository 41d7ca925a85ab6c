/**
 * Bundles the browser test's page (harness/main.tsx) with esbuild: the plugin's real code, React,
 * Paste, and harness/fakeFlex.tsx in place of @twilio/flex-ui. The Baton URL the plugin reads from
 * FLEX_APP_BATON_URL is the one the page is booted with. Output: harness/dist/harness.js.
 */
const path = require('path');
const esbuild = require('esbuild');

const pkg = require('../package.json');

const fpb = (value) => JSON.stringify(String(value));

esbuild
  .build({
    entryPoints: [path.join(__dirname, 'main.tsx')],
    bundle: true,
    outfile: path.join(__dirname, 'dist', 'harness.js'),
    target: 'es2019',
    jsx: 'transform',
    minify: false,
    logLevel: 'warning',
    alias: { '@twilio/flex-ui': path.join(__dirname, 'fakeFlex.tsx') },
    define: {
      'process.env.FLEX_APP_BATON_URL': 'window.harnessBatonUrl',
      'process.env.NODE_ENV': '"production"',
      __FPB_PLUGIN_UNIQUE_NAME: fpb(pkg.name),
      __FPB_PLUGIN_VERSION: fpb(pkg.version),
      __FPB_FLEX_PLUGIN_SCRIPTS_VERSION: fpb('harness'),
      __FPB_FLEX_PLUGIN_VERSION: fpb('harness'),
      __FPB_FLEX_UI_VERSION: fpb('harness'),
      __FPB_REACT_VERSION: fpb('17.0.2'),
      __FPB_REACT_DOM_VERSION: fpb('17.0.2'),
    },
  })
  .catch(() => process.exit(1));
