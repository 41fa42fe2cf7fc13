# A Docker image registry on 127.0.0.1 (free port), for the tests of images built
# once in CI and pulled by deploykit (`image_source = "pull"`): Debian's
# docker-registry package (the CNCF distribution server, v2 API), with its storage
# under the rig dir. The engine talks plain HTTP to it because registries on
# 127.0.0.0/8 are trusted as insecure by default; no credentials.
#
# Exports:
#   DEPLOYKIT_RIG_REGISTRY   127.0.0.1:<port>, to prefix image names with

RIG_REGISTRY_DIR="$RIG_DIR/registry"

rig_registry_provision() {
  apt_install docker-registry
}

rig_registry_start() {
  local port i
  rig_registry_stop || true
  rm -rf "$RIG_REGISTRY_DIR" && mkdir -p "$RIG_REGISTRY_DIR/storage"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$RIG_REGISTRY_DIR/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $RIG_REGISTRY_DIR/storage
http:
  addr: 127.0.0.1:$port
YAML
  /usr/bin/docker-registry serve "$RIG_REGISTRY_DIR/config.yml" >"$RIG_REGISTRY_DIR/server.log" 2>&1 &
  echo $! >"$RIG_REGISTRY_DIR/pid"
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
    || { cat "$RIG_REGISTRY_DIR/server.log" >&2; log "registry: did not start"; return 1; }
  export DEPLOYKIT_RIG_REGISTRY="127.0.0.1:$port"
  log "registry: docker-registry on $DEPLOYKIT_RIG_REGISTRY"
}

rig_registry_stop() {
  local pidfile="$RIG_REGISTRY_DIR/pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
