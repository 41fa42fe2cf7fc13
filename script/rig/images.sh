# Runtime base images for the examples' Dockerfiles. No image registry is reachable,
# so each is a Debian bookworm root file system made by mmdebstrap from Debian's own
# packages and loaded into the rig's engine with `docker import`. The Dockerfiles then
# read like users' (`FROM <base>`, install, COPY, CMD) with only the base name changed.
#
# The rootfs tarballs are cached under $RIG_DIR/images/, keyed by the suite and the
# package list (changing the list builds a new one), so only the first run on a
# machine downloads packages. Needs the docker part (started before this one).
#
#   deploykit-rig/python:<key>  python3 with FastAPI, uvicorn, Alembic, SQLAlchemy and
#                               psycopg2 from Debian (examples/cabanas)
#
# Exports:
#   DEPLOYKIT_RIG_IMAGE_PYTHON  the python image's name

RIG_IMAGES_DIR="$RIG_DIR/images"
RIG_IMAGES_SUITE=bookworm
RIG_IMAGES_MIRROR="${RIG_IMAGES_MIRROR:-http://deb.debian.org/debian}"
RIG_IMAGES_PYTHON_PACKAGES="python3 python3-fastapi python3-uvicorn uvicorn python3-alembic alembic python3-sqlalchemy python3-psycopg2"

# The cached rootfs tarball for an image name and package list.
rig_images_tar() {
  local key
  key="$(printf '%s %s %s' "$RIG_IMAGES_SUITE" minbase "$2" | sha256sum | cut -c1-12)"
  printf '%s/%s-%s.tar\n' "$RIG_IMAGES_DIR" "$1" "$key"
}

rig_images_provision() {
  apt_install mmdebstrap debian-archive-keyring
  # A cold cache means minutes of downloads: mmdebstrap starts now, in the background,
  # and overlaps the other parts' provisioning and start; rig_images_start waits for it.
  RIG_IMAGES_PYTHON_TAR="$(rig_images_tar python "$RIG_IMAGES_PYTHON_PACKAGES")"
  [ -s "$RIG_IMAGES_PYTHON_TAR" ] && return 0
  mkdir -p "$(dirname "$RIG_IMAGES_PYTHON_TAR")"
  log "mmdebstrap python image in the background ($RIG_IMAGES_PYTHON_PACKAGES)"
  rig_images_mmdebstrap "$RIG_IMAGES_PYTHON_PACKAGES" "$RIG_IMAGES_PYTHON_TAR" &
  RIG_IMAGES_PYTHON_PID=$!
}

# Writes a minbase rootfs with the packages to the tarball, atomically; its output
# goes to <tar>.log.
rig_images_mmdebstrap() {
  local packages="$1" tar="$2"
  # </dev/null: with no terminal on stdin mmdebstrap would read sources from it.
  if mmdebstrap --variant=minbase --format=tar --include="${packages// /,}" \
    "$RIG_IMAGES_SUITE" "$tar.tmp" "$RIG_IMAGES_MIRROR" </dev/null >"$tar.log" 2>&1; then
    mv "$tar.tmp" "$tar"
  else
    rm -f "$tar.tmp"
    return 1
  fi
}

# Loads the tarball as an image named after its key (once) and prints the name.
rig_images_load() {
  local name="$1" tar="$2" pid="${3:-}" tag
  tag="deploykit-rig/$name:$(basename "$tar" .tar | sed "s/^$name-//")"
  if [ -n "$pid" ] && ! wait "$pid"; then
    tail -20 "$tar.log" >&2
    log "mmdebstrap of the $name image failed (log: $tar.log)"
    return 1
  fi
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
      "$tar" "$tag" >/dev/null
  fi
  printf '%s\n' "$tag"
}

rig_images_start() {
  if [ -z "${DEPLOYKIT_RIG_DOCKER_HOST:-}" ]; then
    log "the images part needs the docker part: script/rig-up docker images -- …"
    return 1
  fi
  export DOCKER_HOST="$DEPLOYKIT_RIG_DOCKER_HOST"
  DEPLOYKIT_RIG_IMAGE_PYTHON="$(rig_images_load python "$RIG_IMAGES_PYTHON_TAR" "${RIG_IMAGES_PYTHON_PID:-}")"
  RIG_IMAGES_PYTHON_PID=
  export DEPLOYKIT_RIG_IMAGE_PYTHON
  unset DOCKER_HOST
  log "base images: $DEPLOYKIT_RIG_IMAGE_PYTHON"
}

rig_images_stop() {
  # A run that failed before start leaves mmdebstrap running: end it by its id.
  if [ -n "${RIG_IMAGES_PYTHON_PID:-}" ] && kill -0 "$RIG_IMAGES_PYTHON_PID" 2>/dev/null; then
    pkill -TERM -P "$RIG_IMAGES_PYTHON_PID" 2>/dev/null || true
    kill "$RIG_IMAGES_PYTHON_PID" 2>/dev/null || true
  fi
  return 0
}
