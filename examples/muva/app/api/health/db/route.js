import { Pool } from 'pg';

// The seeds' second probe: the database answers (< 1 s). One small pool per worker.
export const dynamic = 'force-dynamic';

let pool;
function db() {
  pool ??= new Pool({
    connectionString: process.env.DATABASE_URL,
    max: 2,
    connectionTimeoutMillis: 1000,
    idleTimeoutMillis: 10000,
  });
  return pool;
}

export async function GET() {
  const started = Date.now();
  try {
    const { rows } = await db().query('SELECT count(*)::int AS n FROM accommodations');
    return Response.json({ status: 'ok', accommodations: rows[0].n, ms: Date.now() - started });
  } catch (err) {
    // The message only: a connection error can carry the host, never the password.
    return Response.json({ status: 'db unreachable', error: err.code || 'error' }, { status: 503 });
  }
}
