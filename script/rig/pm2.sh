# Node.js and PM2 for deploykit-pm2's tests. Tests run PM2 as the sshd rig's user,
# each with its own PM2_HOME under DEPLOYKIT_RIG_PM2_ROOT (so tests can run in
# parallel and never touch a real ~/.pm2); stop kills every PM2 daemon under it.
#
# Exports:
#   DEPLOYKIT_RIG_PM2       path of the pm2 program
#   DEPLOYKIT_RIG_PM2_ROOT  a directory the SSH user owns, for deploy dirs and PM2 homes
#   DEPLOYKIT_RIG_PNPM_STORE  a pnpm store the SSH user owns, kept between rig runs, so
#                           the hosts' `pnpm install --frozen-lockfile` (examples/muva)
#                           downloads each package once per machine, not once per test

RIG_PM2_DIR="$RIG_DIR/pm2"
RIG_PM2_USER="${RIG_SSHD_USER:-dkdeploy}"
# pnpm 10 still runs on Debian bookworm's Node 18 (pnpm 11+ needs a newer Node).
RIG_PNPM_VERSION=10.34.9

rig_pm2_provision() {
  command -v node >/dev/null || apt_install nodejs
  command -v npm >/dev/null || apt_install npm
  command -v git >/dev/null || apt_install git
  command -v tar >/dev/null || apt_install tar
  if ! command -v pm2 >/dev/null; then
    log "npm install -g pm2"
    npm install -g --no-audit --no-fund pm2 >/dev/null
  fi
  if [ "$(pnpm --version 2>/dev/null)" != "$RIG_PNPM_VERSION" ]; then
    log "npm install -g pnpm@$RIG_PNPM_VERSION"
    npm install -g --no-audit --no-fund "pnpm@$RIG_PNPM_VERSION" >/dev/null
  fi
}

rig_pm2_start() {
  rig_pm2_stop
  rm -rf "$RIG_PM2_DIR"
  mkdir -p "$RIG_PM2_DIR"
  if id "$RIG_PM2_USER" >/dev/null 2>&1; then
    chown "$RIG_PM2_USER:$RIG_PM2_USER" "$RIG_PM2_DIR"
  fi
  export DEPLOYKIT_RIG_PM2
  DEPLOYKIT_RIG_PM2="$(command -v pm2)"
  export DEPLOYKIT_RIG_PM2_ROOT="$RIG_PM2_DIR"
  # Not under $RIG_PM2_DIR (wiped above): the store outlives the rig's runs.
  export DEPLOYKIT_RIG_PNPM_STORE="$RIG_DIR/pnpm-store"
  mkdir -p "$DEPLOYKIT_RIG_PNPM_STORE"
  if id "$RIG_PM2_USER" >/dev/null 2>&1; then
    chown -R "$RIG_PM2_USER:$RIG_PM2_USER" "$DEPLOYKIT_RIG_PNPM_STORE"
  fi
  log "pm2 at $DEPLOYKIT_RIG_PM2; state under $RIG_PM2_DIR"
}

rig_pm2_stop() {
  # Every PM2 daemon a test started has its pid file in a PM2_HOME under the root.
  [ -d "$RIG_PM2_DIR" ] || return 0
  local pidfile home pid
  while IFS= read -r pidfile; do
    home="$(dirname "$pidfile")"
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || continue
    if id "$RIG_PM2_USER" >/dev/null 2>&1 && command -v runuser >/dev/null; then
      runuser -u "$RIG_PM2_USER" -- env PM2_HOME="$home" pm2 kill >/dev/null 2>&1 || true
    else
      PM2_HOME="$home" pm2 kill >/dev/null 2>&1 || true
    fi
    # If `pm2 kill` could not reach it, end the daemon by its recorded id.
    kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null || true
  done < <(find "$RIG_PM2_DIR" -name pm2.pid -type f 2>/dev/null)
}
