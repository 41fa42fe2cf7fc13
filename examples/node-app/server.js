// A tiny HTTP app with the endpoints the MUVA-style deploy checks:
//   GET /api/health     {"status":"ok","version":…,"release":…} (503 when `.unhealthy` exists)
//   GET /api/health/db  {"status":"ok"} (503 when DATABASE_URL is set to "down")
//   GET /               the version, as text
// Tests toggle failures with files committed into the app: `.crash-on-start` makes
// the process die right after starting, `.unhealthy` fails /api/health.
const fs = require('fs');
const http = require('http');
const path = require('path');

const here = __dirname;
if (fs.existsSync(path.join(here, '.crash-on-start')) || process.env.CRASH_ON_START === '1') {
  console.error('crashing on start, as requested');
  process.exit(1);
}
const build = JSON.parse(fs.readFileSync(path.join(here, 'dist', 'build.json'), 'utf8'));
const version = process.env.APP_VERSION || build.version;
const release = process.env.DEPLOYKIT_RELEASE || null;
const unhealthy = fs.existsSync(path.join(here, '.unhealthy'));
const port = Number(process.env.PORT || 3000);

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  if (req.url === '/api/health') {
    return unhealthy
      ? json(res, 503, { status: 'unhealthy', version, release })
      : json(res, 200, { status: 'ok', version, release, pid: process.pid });
  }
  if (req.url === '/api/health/db') {
    return process.env.DATABASE_URL === 'down'
      ? json(res, 503, { status: 'db unreachable' })
      : json(res, 200, { status: 'ok' });
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${version}\n`);
});

server.keepAliveTimeout = 1000;
server.listen(port, '127.0.0.1', () => {
  console.log(`version ${version} (release ${release}) listening on 127.0.0.1:${port}`);
});

// PM2 sends SIGINT on reload/stop: finish in-flight requests, then exit.
process.on('SIGINT', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
});
