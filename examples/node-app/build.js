// The "build": writes dist/build.json, which the server refuses to start without,
// so a release that was not built cannot serve. Fails on purpose when FAIL_BUILD=1
// or a `.fail-build` file is in the release (how tests make a build fail).
const fs = require('fs');
const path = require('path');

if (process.env.FAIL_BUILD === '1' || fs.existsSync(path.join(__dirname, '.fail-build'))) {
  console.error('build failed: FAIL_BUILD requested (simulated compile error in src/app.ts:42)');
  // Like many build tools, it echoes its configuration on failure: deploykit must
  // redact it from the error it reports.
  console.error(`config: DATABASE_URL=${process.env.DATABASE_URL || '(unset)'}`);
  process.exit(1);
}
const version = fs.existsSync(path.join(__dirname, 'VERSION'))
  ? fs.readFileSync(path.join(__dirname, 'VERSION'), 'utf8').trim()
  : require('./package.json').version;
fs.mkdirSync(path.join(__dirname, 'dist'), { recursive: true });
fs.writeFileSync(
  path.join(__dirname, 'dist', 'build.json'),
  JSON.stringify({ version, builtAt: new Date().toISOString() }) + '\n'
);
console.log(`built version ${version}`);
