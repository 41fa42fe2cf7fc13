import { unhealthy, version } from '../../../lib/release';

// The seeds' first probe: the app is up (< 5 s). 503 when the release is marked
// unhealthy, so deploykit's probe fails and the release is rolled back.
export const dynamic = 'force-dynamic';

export function GET() {
  const body = { status: unhealthy() ? 'unhealthy' : 'ok', version: version(), pid: process.pid };
  return Response.json(body, { status: unhealthy() ? 503 : 200 });
}
