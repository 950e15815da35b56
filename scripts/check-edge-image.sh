#!/usr/bin/env bash
# Tests each rendered edge configuration (build/<stack>/edge, written by the offline preview)
# with the nginx the pods run: the runtime stage of the web image's Dockerfile, started as the
# edge Deployment starts it (read-only root filesystem, the non-root user, the ConfigMap's
# files mounted read-only at /usr/share/nginx/edge, an in-memory run/ folder). The tests run
# Debian's nginx; this catches what differs between the two versions. Needs Docker (the pull
# request workflow's runners have it). The server's Service name resolves to loopback here:
# nginx resolves upstreams when it reads its configuration.
#
#   scripts/check-edge-image.sh [build-folder]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
DOCKERFILE="components/aws/images/web/Dockerfile"
UID_GID="10001:10001"  # the pods' user (components/lib/kube/pods.py NON_ROOT_UID)
UPSTREAM_HOST="server.exposcholar.svc.cluster.local"

image="$(awk '$1 == "FROM" && $NF == "runtime" { print $2 }' "$DOCKERFILE")"
if [ -z "$image" ]; then
  echo "error: no 'FROM <image> AS runtime' line in $DOCKERFILE" >&2
  exit 2
fi
shopt -s nullglob
folders=("$BUILD"/*/edge)
if [ "${#folders[@]}" -eq 0 ]; then
  echo "error: no $BUILD/<stack>/edge folder: run the offline preview first (make preview)" >&2
  exit 2
fi

status=0
for folder in "${folders[@]}"; do
  stack="$(basename "$(dirname "$folder")")"
  echo "== $stack: nginx -t in $image"
  if ! docker run --rm --read-only --user "$UID_GID" \
      --tmpfs "/usr/share/nginx/run:uid=10001,gid=10001,mode=0700" \
      --tmpfs "/usr/share/nginx/logs:uid=10001,gid=10001,mode=0700" \
      --volume "$(cd "$folder" && pwd):/usr/share/nginx/edge:ro" \
      --add-host "$UPSTREAM_HOST:127.0.0.1" \
      --entrypoint nginx "$image" \
      -t -p /usr/share/nginx/ -c /usr/share/nginx/edge/nginx.conf -e stderr; then
    echo "error: $stack: the pods' nginx refuses the edge configuration" >&2
    status=1
  fi
done
exit "$status"
