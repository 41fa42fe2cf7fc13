# PostgreSQL 15 for the database tests: a throwaway cluster under
# "$RIG_DIR/postgres", run as the `postgres` user on 127.0.0.1 (free port), with
# password (scram-sha-256) auth for a test superuser. Sourced by script/test.
#
# Exports:
#   DEPLOYKIT_RIG_PG_URL   postgres://deploykit:<password>@127.0.0.1:<port>/postgres
#   DEPLOYKIT_RIG_PG_BIN   directory holding initdb/pg_ctl (server binaries)

_rig_pg_server_bin() {
  local d
  for d in /usr/local/bin /usr/lib/postgresql/15/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"; return 0
    fi
  done
  return 1
}

rig_postgres_provision() {
  if ! _rig_pg_server_bin >/dev/null; then
    log "postgres: server binaries missing; installing postgresql-15"
    # No default cluster: the package would otherwise start one on :5432 that
    # outlives script/test.
    mkdir -p /etc/postgresql-common
    grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
      || echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
    apt_install postgresql-15
  fi
  local tool
  for tool in psql pg_dump pg_restore; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      log "postgres: $tool missing; installing postgresql-client-15"
      apt_install postgresql-client-15
      break
    fi
  done
  if ! id postgres >/dev/null 2>&1; then
    log "postgres: creating the postgres system user"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi
  _rig_pg_server_bin >/dev/null || { log "postgres: initdb/pg_ctl still not found"; return 1; }
}

_rig_pg_free_port() {
  local p
  for p in $(seq 54329 54429); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

rig_postgres_start() {
  local bin dir port pw
  bin=$(_rig_pg_server_bin)
  dir="$RIG_DIR/postgres"
  rig_postgres_stop || true
  rm -rf "$dir"
  mkdir -p "$dir/data"
  pw=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n' "$pw" > "$dir/pwfile"
  chown -R postgres: "$dir"
  chmod 700 "$dir" "$dir/data"
  chmod 600 "$dir/pwfile"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U deploykit \
    --auth=scram-sha-256 --pwfile="$dir/pwfile" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  rm -f "$dir/pwfile"
  port=$(_rig_pg_free_port) || { log "postgres: no free port"; return 1; }
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$dir/server.log" >&2; return 1; }
  export DEPLOYKIT_RIG_PG_URL="postgres://deploykit:$pw@127.0.0.1:$port/postgres"
  export DEPLOYKIT_RIG_PG_BIN="$bin"
  log "postgres: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

rig_postgres_stop() {
  local dir="$RIG_DIR/postgres" bin
  [ -f "$dir/data/postmaster.pid" ] || return 0
  bin=$(_rig_pg_server_bin) || return 0
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}
