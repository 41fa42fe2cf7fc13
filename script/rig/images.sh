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

rig_images_provision() {
  apt_install mmdebstrap
}

# Prints the image name for a package list; builds and loads it if the engine lacks it.
rig_images_build() {
  local name="$1" packages="$2" key tar tag out
  key="$(printf '%s %s %s' "$RIG_IMAGES_SUITE" minbase "$packages" | sha256sum | cut -c1-12)"
  tag="deploykit-rig/$name:$key"
  tar="$RIG_IMAGES_DIR/$name-$key.tar"
  if docker image inspect "$tag" >/dev/null 2>&1; then
    printf '%s\n' "$tag"
    return 0
  fi
  mkdir -p "$RIG_IMAGES_DIR"
  if [ ! -s "$tar" ]; then
    log "mmdebstrap $name image ($packages)"
    # </dev/null: with no terminal on stdin mmdebstrap would read sources from it.
    if ! out="$(mmdebstrap --variant=minbase --format=tar --include="${packages// /,}" \
      "$RIG_IMAGES_SUITE" "$tar.tmp" "$RIG_IMAGES_MIRROR" </dev/null 2>&1)"; then
      printf '%s\n' "$out" | tail -20 >&2
      rm -f "$tar.tmp"
      log "mmdebstrap of the $name image failed"
      return 1
    fi
    mv "$tar.tmp" "$tar"
  fi
  docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
    "$tar" "$tag" >/dev/null
  printf '%s\n' "$tag"
}

rig_images_start() {
  if [ -z "${DEPLOYKIT_RIG_DOCKER_HOST:-}" ]; then
    log "the images part needs the docker part: script/rig-up docker images -- …"
    return 1
  fi
  export DOCKER_HOST="$DEPLOYKIT_RIG_DOCKER_HOST"
  DEPLOYKIT_RIG_IMAGE_PYTHON="$(rig_images_build python "$RIG_IMAGES_PYTHON_PACKAGES")"
  export DEPLOYKIT_RIG_IMAGE_PYTHON
  unset DOCKER_HOST
  log "base images: $DEPLOYKIT_RIG_IMAGE_PYTHON"
}

rig_images_stop() { :; }
