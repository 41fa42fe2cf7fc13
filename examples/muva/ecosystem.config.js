// PM2 ecosystem for MUVA: `next start` in cluster mode, so `pm2 startOrReload`
// replaces workers one by one and requests keep being served.
//
// deploykit runs `pm2 startOrReload <deploy_to>/current/ecosystem.config.js
// --update-env --only <name>` with DEPLOYKIT_APP_DIR=<deploy_to>/current: as `cwd`
// it keeps the app's path stable across releases (the symlink), so a reload starts
// whichever release `current` points at. PORT and DATABASE_URL come from the
// target's env in deploykit.toml.
module.exports = {
  apps: [
    {
      name: process.env.APP_NAME || 'muva',
      // Next's CLI, run by PM2's cluster workers (a shell wrapper cannot be clustered).
      script: 'node_modules/next/dist/bin/next',
      args: 'start --hostname 127.0.0.1',
      cwd: process.env.DEPLOYKIT_APP_DIR || __dirname,
      exec_mode: 'cluster',
      instances: Number(process.env.APP_INSTANCES || 2),
      // deploykit puts its env (DEPLOYKIT_RELEASE, PORT, DATABASE_URL from
      // deploykit.toml's target env) over this block on every start and reload, so
      // a block holds only what deploykit does not set.
      env: {
        NODE_ENV: 'production',
      },
      // A worker dying within 3 s of starting counts as unstable; after 5 PM2 gives up.
      min_uptime: 3000,
      max_restarts: 5,
      restart_delay: 200,
      kill_timeout: 5000,
      listen_timeout: 15000,
    },
  ],
};
