// PM2 ecosystem for the sample app: cluster mode with 2 instances, so a reload
// replaces workers one by one and requests keep being served.
//
// deploykit runs `pm2 startOrReload <deploy_to>/current/ecosystem.config.js
// --update-env --only <name>` with DEPLOYKIT_APP_DIR=<deploy_to>/current: using it
// as `cwd` keeps the app's path stable across releases (the symlink), so a reload
// picks up whichever release `current` points at.
module.exports = {
  apps: [
    {
      name: process.env.APP_NAME || 'node-app',
      script: 'server.js',
      cwd: process.env.DEPLOYKIT_APP_DIR || __dirname,
      exec_mode: 'cluster',
      instances: Number(process.env.APP_INSTANCES || 2),
      // A worker dying within 2 s of starting counts as unstable; after 5 PM2 gives up
      // (status `errored`).
      min_uptime: 2000,
      max_restarts: 5,
      restart_delay: 200,
      kill_timeout: 4000,
      listen_timeout: 8000,
    },
  ],
};
