#!/usr/bin/env bash
# local-bases.sh: the two base images the Dockerfile names, made from this machine's own files, for machines
# with no container registry (this sandbox, air-gapped CI). Needs root and buildah.
#   localhost/hotconf-base/build:node20    node + npm + a POSIX sh, as node:20-bookworm-slim offers them
#   localhost/hotconf-base/runtime:node20  node at /nodejs/bin/node and its shared libraries, CA certificates,
#                                          no shell: the layout of gcr.io/distroless/nodejs20-debian12
# Build with: podman build --build-arg BUILD_IMAGE=localhost/hotconf-base/build:node20 \
#                          --build-arg RUNTIME_IMAGE=localhost/hotconf-base/runtime:node20 -t hotconf:0.1.0 .
set -euo pipefail
NODE=$(readlink -f "$(command -v node)")
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")   # …/node_modules/npm

# Copies a binary and every shared library it loads (ldd) into the image root $1 at $3 (default: same path).
copy_bin() {
  local root=$1 bin=$2 dest=${3:-$2}
  install -D -m 0755 "$bin" "$root$dest"
  ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
    [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

base() { # base NAME ROOT-FILLER
  local ctr mnt
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  install -d -m 1777 "$mnt/tmp"
  install -d -m 0755 "$mnt/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$mnt/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' > "$mnt/etc/group"
  "$2" "$mnt" "$ctr"
  buildah umount "$ctr" >/dev/null
  buildah commit --quiet --rm "$ctr" "$1" >/dev/null
  echo "$1"
}

runtime_root() {
  copy_bin "$1" "$NODE" /nodejs/bin/node
  buildah config --entrypoint '["/nodejs/bin/node"]' --cmd '' --user 65532:65532 --workingdir /home/nonroot "$2"
  install -d -o 65532 -g 65532 "$1/home/nonroot"
}

build_root() {
  copy_bin "$1" "$NODE" /usr/local/bin/node
  mkdir -p "$1/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$1/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"
  copy_bin "$1" /bin/dash /bin/sh
  for b in env cat ls mkdir rm cp mv; do copy_bin "$1" "$(command -v $b)" "/usr/bin/$b"; done
  install -d -m 0700 "$1/root"
  # npm trusts the CAs of this machine (a TLS-intercepting proxy, if any, is in them), as its own npm does.
  buildah config --env PATH=/usr/local/bin:/usr/bin:/bin --env HOME=/root --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt --cmd '["node"]' "$2"
}

base localhost/hotconf-base/runtime:node20 runtime_root
base localhost/hotconf-base/build:node20 build_root
