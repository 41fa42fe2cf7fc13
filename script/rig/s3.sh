# An S3-compatible object store on 127.0.0.1 (free port) for the backup tests:
# moto's standalone server (`moto[server]` from PyPI), in a virtualenv kept under
# the rig dir so later runs of this checkout skip the install. Sourced by
# script/rig-up and script/test.
#
# Why moto and not s3s-fs (crates.io): both install from registries reachable
# here, but on this 2-core machine `pip install 'moto[server]'` took 74 s cold,
# while `cargo install s3s-fs --features binary` needs a full Rust build (several
# minutes; its newest release also needs a newer rustc than the project's) — CI
# time matters (the whole run must stay well under 30 min). moto speaks the S3
# REST API that object_store uses (path-style, multipart upload, list v2,
# delete). It does not check request signatures, so the tests prove credentials
# are masked, not rejected.
#
# Exports:
#   DEPLOYKIT_RIG_S3_ENDPOINT          http://127.0.0.1:<port>
#   DEPLOYKIT_RIG_S3_BUCKET            a bucket created empty at start
#   DEPLOYKIT_RIG_S3_REGION            us-east-1
#   DEPLOYKIT_RIG_S3_ACCESS_KEY_ID     throwaway credentials (random per start)
#   DEPLOYKIT_RIG_S3_SECRET_ACCESS_KEY
#   DEPLOYKIT_RIG_S3_PID               the server's pid (tests may stop it to
#                                      simulate a store that went down)

RIG_S3_DIR="$RIG_DIR/s3"
RIG_S3_VENV="$RIG_S3_DIR/venv"
RIG_S3_MOTO_VERSION="5.2.5"

rig_s3_provision() {
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  if [ -x "$RIG_S3_VENV/bin/moto_server" ] \
    && "$RIG_S3_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$RIG_S3_MOTO_VERSION')" 2>/dev/null; then
    return 0
  fi
  log "s3: installing moto[server] $RIG_S3_MOTO_VERSION into $RIG_S3_VENV (once per checkout)"
  rm -rf "$RIG_S3_VENV"
  mkdir -p "$RIG_S3_DIR"
  python3 -m venv "$RIG_S3_VENV"
  "$RIG_S3_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$RIG_S3_MOTO_VERSION" \
    || { log "s3: pip install moto[server] failed"; return 1; }
}

_rig_s3_free_port() {
  "$RIG_S3_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

rig_s3_start() {
  local port state i
  # script/rig-up may move RIG_DIR after provisioning (a rig user that cannot
  # reach the checkout): install there too.
  [ -x "$RIG_S3_VENV/bin/moto_server" ] || rig_s3_provision
  rig_s3_stop || true
  state="$RIG_S3_DIR/state"
  rm -rf "$state" && mkdir -p "$state" && chmod 700 "$RIG_S3_DIR" "$state"
  port=$(_rig_s3_free_port) || { log "s3: no free port"; return 1; }
  (cd "$state" && exec "$RIG_S3_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$state/server.log" 2>&1) &
  echo $! >"$state/pid"
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { cat "$state/server.log" >&2; log "s3: moto did not start"; return 1; }
  export DEPLOYKIT_RIG_S3_ENDPOINT="http://127.0.0.1:$port"
  export DEPLOYKIT_RIG_S3_BUCKET="deploykit-rig"
  export DEPLOYKIT_RIG_S3_REGION="us-east-1"
  export DEPLOYKIT_RIG_S3_ACCESS_KEY_ID="DKRIG$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export DEPLOYKIT_RIG_S3_SECRET_ACCESS_KEY="$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export DEPLOYKIT_RIG_S3_PID="$(cat "$state/pid")"
  "$RIG_S3_VENV/bin/python" -c '
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/" + sys.argv[2], method="PUT"))
' "$DEPLOYKIT_RIG_S3_ENDPOINT" "$DEPLOYKIT_RIG_S3_BUCKET" \
    || { log "s3: could not create the bucket"; return 1; }
  log "s3: moto $RIG_S3_MOTO_VERSION on 127.0.0.1:$port, bucket $DEPLOYKIT_RIG_S3_BUCKET"
}

rig_s3_stop() {
  local pidfile="$RIG_S3_DIR/state/pid" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
