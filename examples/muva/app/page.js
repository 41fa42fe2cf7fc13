import { version } from '../lib/release';

// Rendered per request, so the page shows the release that serves it.
export const dynamic = 'force-dynamic';

export default function Home() {
  return (
    <main>
      <h1>MUVA</h1>
      <p id="version">{version()}</p>
    </main>
  );
}
