# A two-node Docker Swarm for deploykit-docker's Swarm target: two private dockerd
# engines of this part's own (each with its own data root, exec root, pidfile,
# containerd namespaces and unix socket under $RIG_DIR/swarm), no bridge, no
# iptables. The first runs `swarm init` as the manager, the second joins it as a
# worker; both listen on free loopback ports, so the swarm never leaves the machine
# and other checkouts' rigs never collide. The rig's main engine (docker.sh) is
# never touched: a test of the Swarm target only ever talks to these two.
#
# Both nodes share the machine's loopback (services use the `host` network), so
# two tasks of one service bind the same address whichever node runs them.
#
# No registry is reachable: the busybox base image is built on the manager and
# `docker save | docker load`ed into the worker, so both nodes hold the identical
# image (same id). Tests load their release images onto both nodes the same way.
#
# Exports:
#   DEPLOYKIT_RIG_SWARM_HOST         unix:///…/manager.sock (the manager's engine)
#   DEPLOYKIT_RIG_SWARM_WORKER_HOST  unix:///…/worker.sock  (the worker's engine)
#   DEPLOYKIT_RIG_SWARM_BUSYBOX      the busybox base image, present on both nodes

RIG_SWARM_DIR="$RIG_DIR/swarm"
RIG_SWARM_NODES="manager worker"
RIG_SWARM_BUSYBOX=deploykit-rig/swarm-busybox:base

rig_swarm_provision() {
  apt_install docker.io busybox-static python3
  getent group "${RIG_DOCKER_GROUP:-deploykit-docker}" >/dev/null \
    || groupadd --system "${RIG_DOCKER_GROUP:-deploykit-docker}"
}

rig_swarm_sock() { printf 'unix://%s/%s.sock' "$RIG_SWARM_DIR" "$1"; }

rig_swarm_running() {
  local pidfile="$RIG_SWARM_DIR/$1/dockerd.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

rig_swarm_free_port() {
  # A port free for TCP and UDP (the data path is VXLAN over UDP) below 49152:
  # swarm refuses a data-path port in the kernel's ephemeral range.
  python3 - <<'PY'
import random, socket
for _ in range(200):
    port = random.randint(20000, 49151)
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", port))
            s.close()
    except OSError:
        continue
    print(port)
    break
else:
    raise SystemExit("no free port below 49152")
PY
}

rig_swarm_dockerd() {
  # Starts the engine of node $1 (unless it runs) and waits until it answers.
  local node="$1" dir="$RIG_SWARM_DIR/$1" host
  host="$(rig_swarm_sock "$node")"
  mkdir -p "$dir"
  if ! rig_swarm_running "$node"; then
    rm -f "$RIG_SWARM_DIR/$node.sock" "$dir/dockerd.pid"
    # setsid: its own process group, so stop can end it and what it started.
    setsid dockerd \
      --bridge=none --iptables=false --ip6tables=false \
      --data-root "$dir/data" \
      --exec-root "$dir/exec" \
      --pidfile "$dir/dockerd.pid" \
      --containerd-namespace "deploykit-rig-swarm-$node" \
      --containerd-plugins-namespace "deploykit-rig-swarm-$node-plugins" \
      --group "${RIG_DOCKER_GROUP:-deploykit-docker}" \
      -H "$host" \
      >"$dir/dockerd.log" 2>&1 </dev/null &
  fi
  local i
  for i in $(seq 1 60); do
    DOCKER_HOST="$host" docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "swarm: the $node's dockerd did not come up; last log lines:"
  tail -20 "$dir/dockerd.log" >&2
  return 1
}

rig_swarm_state() {
  # The node's swarm state: inactive, active, pending, error, locked.
  DOCKER_HOST="$(rig_swarm_sock "$1")" docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null
}

rig_swarm_start() {
  local manager worker node
  manager="$(rig_swarm_sock manager)"
  worker="$(rig_swarm_sock worker)"
  export DEPLOYKIT_RIG_SWARM_HOST="$manager"
  export DEPLOYKIT_RIG_SWARM_WORKER_HOST="$worker"
  export DEPLOYKIT_RIG_SWARM_BUSYBOX="$RIG_SWARM_BUSYBOX"
  for node in $RIG_SWARM_NODES; do rig_swarm_dockerd "$node" || return 1; done

  # A swarm left by a run that was killed before its stop is reused only if both
  # nodes are still in it; anything else is torn down and formed anew.
  if [ "$(rig_swarm_state manager)" != active ] || [ "$(rig_swarm_state worker)" != active ] \
    || [ "$(DOCKER_HOST="$manager" docker node ls -q 2>/dev/null | wc -l)" != 2 ]; then
    DOCKER_HOST="$worker" docker swarm leave --force >/dev/null 2>&1 || true
    DOCKER_HOST="$manager" docker swarm leave --force >/dev/null 2>&1 || true
    local p_manager p_worker p_data token
    p_manager="$(rig_swarm_free_port)"
    p_worker="$(rig_swarm_free_port)"
    p_data="$(rig_swarm_free_port)"
    DOCKER_HOST="$manager" docker swarm init \
      --advertise-addr "127.0.0.1:$p_manager" --listen-addr "127.0.0.1:$p_manager" \
      --data-path-port "$p_data" >/dev/null || { log "swarm: init failed"; return 1; }
    token="$(DOCKER_HOST="$manager" docker swarm join-token -q worker)"
    DOCKER_HOST="$worker" docker swarm join --token "$token" \
      --advertise-addr "127.0.0.1:$p_worker" --listen-addr "127.0.0.1:$p_worker" \
      "127.0.0.1:$p_manager" >/dev/null || { log "swarm: the worker did not join"; return 1; }
  fi
  local i ready
  for i in $(seq 1 60); do
    ready="$(DOCKER_HOST="$manager" docker node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true)"
    [ "$ready" = 2 ] && break
    sleep 0.5
  done
  [ "$ready" = 2 ] || { log "swarm: expected two Ready nodes, have ${ready:-none}"; return 1; }
  rig_swarm_images || return 1
  log "swarm: manager $manager, worker $worker, image $RIG_SWARM_BUSYBOX on both"
}

rig_swarm_images() {
  local ctx="$RIG_SWARM_DIR/images/busybox" out
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp /usr/bin/busybox "$ctx/busybox"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /etc && chmod 1777 /tmp \
 && echo 'root:x:0:0:root:/:/bin/sh' > /etc/passwd && echo 'root:x:0:' > /etc/group
EOF
  if ! out="$(DOCKER_HOST="$DEPLOYKIT_RIG_SWARM_HOST" docker build -t "$RIG_SWARM_BUSYBOX" "$ctx" 2>&1)"; then
    printf '%s\n' "$out" | tail -30 >&2
    log "swarm: building $RIG_SWARM_BUSYBOX failed"
    return 1
  fi
  # The worker gets the identical image: tasks there need it and no registry exists.
  DOCKER_HOST="$DEPLOYKIT_RIG_SWARM_HOST" docker save "$RIG_SWARM_BUSYBOX" \
    | DOCKER_HOST="$DEPLOYKIT_RIG_SWARM_WORKER_HOST" docker load >/dev/null \
    || { log "swarm: loading $RIG_SWARM_BUSYBOX into the worker failed"; return 1; }
}

rig_swarm_stop() {
  local node pid host m
  # Services first, then the nodes leave: their tasks' containers go with them.
  if rig_swarm_running manager; then
    host="$(rig_swarm_sock manager)"
    DOCKER_HOST="$host" docker service ls -q 2>/dev/null | xargs -r env DOCKER_HOST="$host" docker service rm >/dev/null 2>&1 || true
  fi
  for node in worker manager; do
    rig_swarm_running "$node" || continue
    host="$(rig_swarm_sock "$node")"
    DOCKER_HOST="$host" docker swarm leave --force >/dev/null 2>&1 || true
    # shellcheck disable=SC2046
    DOCKER_HOST="$host" docker rm -f $(DOCKER_HOST="$host" docker ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    pid="$(cat "$RIG_SWARM_DIR/$node/dockerd.pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RIG_SWARM_DIR/$node.sock"
  done
  # dockerd leaves network namespace mounts (netns of docker_gwbridge, ingress)
  # behind under its exec root; nothing else may use them.
  for m in $(awk -v d="$RIG_SWARM_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || true
  done
}
