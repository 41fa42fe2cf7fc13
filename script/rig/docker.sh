# Docker engine for deploykit-docker's tests: a private dockerd (its own data root,
# exec root, containerd namespace and socket under $RIG_DIR/docker) with no bridge and
# no iptables rules, so nothing it runs listens outside loopback; test stacks use
# `network_mode: host`. No image registry is reachable, so the images the tests need
# are built here FROM scratch out of host binaries:
#
#   deploykit-rig/busybox:base  busybox-static with its applets (sh, httpd, wget...)
#   deploykit-rig/postgres:15   the host's PostgreSQL 15 binaries with their shared
#                               libraries (ldd), share/ and lib/, plus busybox
#
# Exports:
#   DEPLOYKIT_RIG_DOCKER_HOST      unix:///…/docker.sock of the private engine
#   DEPLOYKIT_RIG_DOCKER_BUSYBOX   the busybox base image
#   DEPLOYKIT_RIG_DOCKER_POSTGRES  the postgres image
#   DEPLOYKIT_RIG_DOCKER_GROUP     a group owning the socket (for an SSH test user)

RIG_DOCKER_DIR="$RIG_DIR/docker"
RIG_DOCKER_SOCK="$RIG_DOCKER_DIR/docker.sock"
RIG_DOCKER_PIDFILE="$RIG_DOCKER_DIR/dockerd.pid"
RIG_DOCKER_GROUP=deploykit-docker
RIG_DOCKER_PG_BIN=/usr/lib/postgresql/15/bin

rig_docker_provision() {
  apt_install docker.io docker-compose busybox-static postgresql-15
  getent group "$RIG_DOCKER_GROUP" >/dev/null || groupadd --system "$RIG_DOCKER_GROUP"
}

rig_docker_dockerd_running() {
  [ -f "$RIG_DOCKER_PIDFILE" ] && kill -0 "$(cat "$RIG_DOCKER_PIDFILE")" 2>/dev/null
}

rig_docker_start() {
  mkdir -p "$RIG_DOCKER_DIR"
  export DEPLOYKIT_RIG_DOCKER_HOST="unix://$RIG_DOCKER_SOCK"
  export DEPLOYKIT_RIG_DOCKER_BUSYBOX=deploykit-rig/busybox:base
  export DEPLOYKIT_RIG_DOCKER_POSTGRES=deploykit-rig/postgres:15
  export DEPLOYKIT_RIG_DOCKER_GROUP="$RIG_DOCKER_GROUP"
  if ! rig_docker_dockerd_running; then
    rm -f "$RIG_DOCKER_SOCK" "$RIG_DOCKER_PIDFILE"
    # setsid: its own process group, so stop can end it and everything it started.
    setsid dockerd \
      --bridge=none --iptables=false --ip6tables=false \
      --data-root "$RIG_DOCKER_DIR/data" \
      --exec-root "$RIG_DOCKER_DIR/exec" \
      --pidfile "$RIG_DOCKER_PIDFILE" \
      --containerd-namespace deploykit-rig \
      --containerd-plugins-namespace deploykit-rig-plugins \
      --group "$RIG_DOCKER_GROUP" \
      -H "$DEPLOYKIT_RIG_DOCKER_HOST" \
      >"$RIG_DOCKER_DIR/dockerd.log" 2>&1 </dev/null &
  fi
  local i
  for i in $(seq 1 60); do
    DOCKER_HOST="$DEPLOYKIT_RIG_DOCKER_HOST" docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! DOCKER_HOST="$DEPLOYKIT_RIG_DOCKER_HOST" docker info >/dev/null 2>&1; then
    log "dockerd did not come up; last log lines:"
    tail -20 "$RIG_DOCKER_DIR/dockerd.log" >&2
    return 1
  fi
  rig_docker_build_images
}

rig_docker_build() {
  # Builds quietly; shows the build's output only when it fails.
  local out
  if ! out="$(docker build -t "$1" "$2" 2>&1)"; then
    printf '%s\n' "$out" | tail -30 >&2
    log "building image $1 failed"
    return 1
  fi
}

rig_docker_build_images() {
  local ctx="$RIG_DOCKER_DIR/images"
  export DOCKER_HOST="$DEPLOYKIT_RIG_DOCKER_HOST"
  rm -rf "$ctx" && mkdir -p "$ctx/busybox" "$ctx/postgres/root"

  # busybox: one static binary, applets as symlinks.
  cp /usr/bin/busybox "$ctx/busybox/busybox"
  cat >"$ctx/busybox/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /etc && chmod 1777 /tmp \
 && echo 'root:x:0:0:root:/:/bin/sh' > /etc/passwd && echo 'root:x:0:' > /etc/group
EOF
  rig_docker_build "$DEPLOYKIT_RIG_DOCKER_BUSYBOX" "$ctx/busybox"

  # postgres: the host's binaries at their own paths (so share/lib are found
  # relative to bin/), every shared library ldd names, and the timezone data.
  local root="$ctx/postgres/root" f lib
  mkdir -p "$root$RIG_DOCKER_PG_BIN"
  cp -a "$RIG_DOCKER_PG_BIN"/. "$root$RIG_DOCKER_PG_BIN"/
  mkdir -p "$root/usr/lib/postgresql/15/lib" "$root/usr/share/postgresql"
  cp -a /usr/lib/postgresql/15/lib/. "$root/usr/lib/postgresql/15/lib/"
  cp -a /usr/share/postgresql/15 "$root/usr/share/postgresql/"
  mkdir -p "$root/usr/share/zoneinfo" && cp -a /usr/share/zoneinfo/. "$root/usr/share/zoneinfo/"
  for f in "$RIG_DOCKER_PG_BIN"/* /usr/lib/postgresql/15/lib/*.so; do
    ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib/{print $1}'
  done | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cat >"$ctx/postgres/entrypoint.sh" <<'EOF'
#!/bin/sh
# Initialises $PGDATA on first start, then runs postgres on 127.0.0.1:$PGPORT.
set -e
export PATH=/usr/lib/postgresql/15/bin:$PATH
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --auth=trust --no-locale -E UTF8 --no-sync >/dev/null 2>&1
  # Like the official image: the database defaults to the user's name.
  POSTGRES_DB="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
  if [ "$POSTGRES_DB" != postgres ]; then
    postgres --single -D "$PGDATA" -c listen_addresses='' postgres <<SQL >/dev/null
CREATE DATABASE "$POSTGRES_DB";
SQL
  fi
fi
exec postgres -D "$PGDATA" -c fsync=off -c listen_addresses=127.0.0.1 -p "${PGPORT:-5432}" -k /tmp
EOF
  chmod +x "$ctx/postgres/entrypoint.sh"
  cat >"$ctx/postgres/Dockerfile" <<EOF
FROM $DEPLOYKIT_RIG_DOCKER_BUSYBOX
COPY root/ /
COPY entrypoint.sh /entrypoint.sh
RUN echo 'postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh' >> /etc/passwd \\
 && echo 'postgres:x:999:' >> /etc/group \\
 && mkdir -p /var/lib/postgresql/data && chown -R 999:999 /var/lib/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:/bin PGDATA=/var/lib/postgresql/data PGHOST=/tmp
USER postgres
HEALTHCHECK --interval=1s --timeout=2s --retries=30 CMD pg_isready -h /tmp -p "\${PGPORT:-5432}" -U "\${POSTGRES_USER:-postgres}" -q
ENTRYPOINT ["/entrypoint.sh"]
EOF
  rig_docker_build "$DEPLOYKIT_RIG_DOCKER_POSTGRES" "$ctx/postgres"
  unset DOCKER_HOST
  log "docker images built: $DEPLOYKIT_RIG_DOCKER_BUSYBOX $DEPLOYKIT_RIG_DOCKER_POSTGRES"
}

rig_docker_stop() {
  rig_docker_dockerd_running || return 0
  local pid
  pid="$(cat "$RIG_DOCKER_PIDFILE")"
  # Containers first (they would be left running by the engine's live-restore).
  local ids
  ids="$(DOCKER_HOST="unix://$RIG_DOCKER_SOCK" docker ps -aq 2>/dev/null || true)"
  # shellcheck disable=SC2086
  [ -n "$ids" ] && DOCKER_HOST="unix://$RIG_DOCKER_SOCK" docker rm -f $ids >/dev/null 2>&1
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RIG_DOCKER_SOCK"
  # dockerd leaves its network namespace mount behind; nothing else may use it.
  local m
  for m in $(awk -v d="$RIG_DOCKER_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || true
  done
}
