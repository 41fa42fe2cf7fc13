# OpenSSH servers on 127.0.0.1 for the SSH shell and the PM2 target's tests: N
# instances (default 3, for the multi-host test) on consecutive free ports, each with
# its own config, sharing one throwaway host key, one throwaway user and one key pair.
# Password and keyboard-interactive login are off; only the generated key gets in.
#
# Exports:
#   DEPLOYKIT_RIG_SSH_HOST         127.0.0.1
#   DEPLOYKIT_RIG_SSH_PORT         the first instance's port
#   DEPLOYKIT_RIG_SSH_PORTS        all ports, comma-separated
#   DEPLOYKIT_RIG_SSH_USER         the login user (dkdeploy)
#   DEPLOYKIT_RIG_SSH_KEY          its private key (accepted)
#   DEPLOYKIT_RIG_SSH_WRONG_KEY    another private key (refused)
#   DEPLOYKIT_RIG_SSH_KNOWN_HOSTS  a known_hosts file with the host key for every port

RIG_SSHD_DIR="$RIG_DIR/sshd"
RIG_SSHD_USER=dkdeploy
RIG_SSHD_INSTANCES="${RIG_SSHD_INSTANCES:-3}"

rig_sshd_provision() {
  [ -x /usr/sbin/sshd ] || apt_install openssh-server
  command -v ssh >/dev/null || apt_install openssh-client
  command -v ssh-keygen >/dev/null || apt_install openssh-client
  if ! id "$RIG_SSHD_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$RIG_SSHD_USER"
  fi
  # A new account is locked ('!'), and sshd refuses locked accounts even for key
  # login; '*' means "no password can ever match" without locking it.
  usermod -p '*' "$RIG_SSHD_USER"
  # Lets the user reach the docker rig's engine socket when that rig is present.
  if [ -n "${RIG_DOCKER_GROUP:-}" ] && getent group "$RIG_DOCKER_GROUP" >/dev/null; then
    usermod -aG "$RIG_DOCKER_GROUP" "$RIG_SSHD_USER"
  fi
}

rig_sshd_port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

rig_sshd_pick_ports() {
  # Finds RIG_SSHD_INSTANCES consecutive free ports from 22220 upwards.
  local base=22220 n ok
  while [ "$base" -lt 23000 ]; do
    ok=1
    for ((n = 0; n < RIG_SSHD_INSTANCES; n++)); do
      rig_sshd_port_free $((base + n)) || { ok=0; break; }
    done
    if [ "$ok" = 1 ]; then echo "$base"; return 0; fi
    base=$((base + RIG_SSHD_INSTANCES))
  done
  log "no $RIG_SSHD_INSTANCES consecutive free ports for sshd"
  return 1
}

rig_sshd_start() {
  local dir="$RIG_SSHD_DIR" home port base i ports=()
  rig_sshd_stop
  rm -rf "$dir" && mkdir -p "$dir" /run/sshd
  # sshd reads authorized_keys as the user: the directory must be traversable.
  chmod 755 "$dir"
  ssh-keygen -q -t ed25519 -N '' -C deploykit-rig-host -f "$dir/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -C deploykit-rig-client -f "$dir/client_key"
  ssh-keygen -q -t ed25519 -N '' -C deploykit-rig-wrong -f "$dir/wrong_key"

  home="$(getent passwd "$RIG_SSHD_USER" | cut -d: -f6)"
  install -d -m 700 -o "$RIG_SSHD_USER" -g "$RIG_SSHD_USER" "$home/.ssh"
  # The accepted key lives in this rig's directory, not in the user's home, so rigs
  # of several worktrees running at once never replace each other's key.
  install -m 644 "$dir/client_key.pub" "$dir/authorized_keys"
  # Non-interactive SSH sessions get sshd's minimal PATH; node, pm2 and pnpm may live
  # elsewhere (npm's global prefix), so the rig puts their directories first.
  local path_dirs=""
  for bin in node npm pm2 pnpm git; do
    if command -v "$bin" >/dev/null; then
      path_dirs="$path_dirs:$(dirname "$(command -v "$bin")")"
    fi
  done
  # Written aside and renamed: another worktree's rig may be reading it right now.
  printf 'PATH=%s:/usr/local/bin:/usr/bin:/bin\n' "${path_dirs#:}" >"$home/.ssh/environment.$$"
  chown "$RIG_SSHD_USER:$RIG_SSHD_USER" "$home/.ssh/environment.$$"
  chmod 600 "$home/.ssh/environment.$$"
  mv -f "$home/.ssh/environment.$$" "$home/.ssh/environment"

  base="$(rig_sshd_pick_ports)" || return 1
  : >"$dir/known_hosts"
  for ((i = 0; i < RIG_SSHD_INSTANCES; i++)); do
    port=$((base + i))
    ports+=("$port")
    cat >"$dir/sshd_$port.conf" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $dir/host_ed25519
PidFile $dir/sshd_$port.pid
AllowUsers $RIG_SSHD_USER
AuthorizedKeysFile $dir/authorized_keys
# The checkout (and so this file) may sit under a world-writable directory such as
# /tmp, which StrictModes refuses; this throwaway server trusts its own files.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
PermitUserEnvironment PATH
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
MaxSessions 100
MaxStartups 100:30:200
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
    /usr/sbin/sshd -t -f "$dir/sshd_$port.conf"
    /usr/sbin/sshd -f "$dir/sshd_$port.conf" -E "$dir/sshd_$port.log"
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1-2 "$dir/host_ed25519.pub")" >>"$dir/known_hosts"
  done

  export DEPLOYKIT_RIG_SSH_HOST=127.0.0.1
  export DEPLOYKIT_RIG_SSH_PORT="${ports[0]}"
  export DEPLOYKIT_RIG_SSH_PORTS
  DEPLOYKIT_RIG_SSH_PORTS="$(IFS=,; echo "${ports[*]}")"
  export DEPLOYKIT_RIG_SSH_USER="$RIG_SSHD_USER"
  export DEPLOYKIT_RIG_SSH_KEY="$dir/client_key"
  export DEPLOYKIT_RIG_SSH_WRONG_KEY="$dir/wrong_key"
  export DEPLOYKIT_RIG_SSH_KNOWN_HOSTS="$dir/known_hosts"

  for port in "${ports[@]}"; do
    for i in $(seq 1 50); do
      if ssh -n -o BatchMode=yes -o IdentitiesOnly=yes -i "$DEPLOYKIT_RIG_SSH_KEY" \
        -o UserKnownHostsFile="$DEPLOYKIT_RIG_SSH_KNOWN_HOSTS" -o StrictHostKeyChecking=yes \
        -p "$port" "$RIG_SSHD_USER@127.0.0.1" true 2>/dev/null; then
        continue 2
      fi
      sleep 0.2
    done
    log "sshd on port $port does not accept the rig key; its log:"
    tail -20 "$dir/sshd_$port.log" >&2
    return 1
  done
  log "sshd on 127.0.0.1:${DEPLOYKIT_RIG_SSH_PORTS} as $RIG_SSHD_USER"
}

rig_sshd_stop() {
  local pidfile pid
  for pidfile in "$RIG_SSHD_DIR"/sshd_*.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    # Only the listener this rig started (its pid file); sessions end with it.
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}
