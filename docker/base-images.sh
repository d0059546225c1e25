#!/usr/bin/env bash
# Builds, from Debian's packages, the two base images the Dockerfiles start
# from, for a Docker engine that cannot pull them (no registry):
#   debian:bookworm-slim                    docker/nginx.Dockerfile's base
#   gcr.io/distroless/cc-debian12:nonroot   docker/Dockerfile's runtime base
# Each is tagged with the public name, so the Dockerfiles are the ones a
# user with a registry builds; such a user never needs this script. An image
# already present (pulled or built earlier) is left alone: with both
# present this does nothing.
#
# These are local stand-ins, not the upstream images: a bookworm minbase
# made by debootstrap (cleaned as the slim image is), and the libraries of
# Debian 12's libc6, libgcc-s1 and libstdc++6 taken from it with a nonroot
# user (uid 65532), which is what the distroless cc image holds (less its
# tzdata, CA certificates and OpenSSL, which score-server does not use).
#
#   docker/base-images.sh
# Needs root (debootstrap, chroot) and Debian's mirror (DEBIAN_MIRROR,
# default http://deb.debian.org/debian). The minbase root filesystem is
# cached as a tarball in ${SCORE_CACHE_DIR:-~/.cache/score}.
set -euo pipefail

slim=debian:bookworm-slim
distroless=gcr.io/distroless/cc-debian12:nonroot
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${SCORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/score}
tarball=$cache/debootstrap-bookworm-minbase.tar.gz

have() { docker image inspect "$1" >/dev/null 2>&1; }
if have "$slim" && have "$distroless"; then
  echo "base images present: $slim, $distroless"
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
work=$(mktemp -d)
trap '$sudo rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"

if [ ! -s "$tarball" ]; then
  if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    echo "installing debootstrap (apt-get)" >&2
    $sudo apt-get install -y -q debootstrap >/dev/null ||
      { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q debootstrap >/dev/null; }
  fi
  echo "debootstrap --variant=minbase bookworm ($mirror): about a minute" >&2
  $sudo env PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; echo "base-images.sh: debootstrap failed (log above)" >&2; exit 1; }
  # What the slim image leaves out: package lists, caches, documentation.
  $sudo rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
  mkdir -p "$cache"
  $sudo tar -C "$root" --numeric-owner -czf "$tarball.partial" .
  $sudo mv "$tarball.partial" "$tarball"
else
  $sudo tar -C "$root" --numeric-owner -xzf "$tarball"
fi

if ! have "$slim"; then
  # apt in a container does not need the host's cached lists; the image's
  # sources come from debootstrap (the mirror above).
  $sudo tar -C "$root" --numeric-owner -c . |
    docker import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm" - "$slim" >/dev/null
  echo "built $slim"
fi

if ! have "$distroless"; then
  cc=$work/cc
  mkdir -p "$cc"/{etc,tmp,home/nonroot,usr/lib}
  chmod 1777 "$cc/tmp"
  # Debian 12 is merged-/usr: /lib and /lib64 are links into /usr.
  for link in lib lib64 bin sbin; do
    if [ -L "$root/$link" ]; then cp -P "$root/$link" "$cc/$link"; fi
  done
  # Every file of the three packages, by its path under /usr (the package
  # lists name the pre-merge paths), less documentation and translations.
  for pkg in libc6 libgcc-s1 libstdc++6; do
    list=""
    for l in "$root"/var/lib/dpkg/info/"$pkg"{,:*}.list; do
      if [ -f "$l" ]; then list=$l; break; fi
    done
    [ -n "$list" ] || { echo "base-images.sh: no dpkg list for $pkg" >&2; exit 1; }
    while IFS= read -r path; do
      case "$path" in /usr/share/*) continue ;; esac
      src=$root$path
      [ -f "$src" ] || [ -L "$src" ] || continue
      [ -d "$src" ] && [ ! -L "$src" ] && continue
      dir=$(cd "$(dirname "$src")" && pwd -P)
      rel=${dir#"$root"}
      mkdir -p "$cc$rel"
      cp -P "$src" "$cc$rel/"
    done <"$list"
  done
  cp -L "$root/etc/os-release" "$cc/etc/os-release"
  cp "$root/etc/nsswitch.conf" "$cc/etc/"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$cc/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"$cc/etc/group"
  $sudo chown -R 0:0 "$cc"
  $sudo chown 65532:65532 "$cc/home/nonroot"
  $sudo tar -C "$cc" --numeric-owner -c . |
    docker import --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
      --message "libc6, libgcc-s1, libstdc++6 of Debian 12 (stand-in for distroless cc)" - "$distroless" >/dev/null
  echo "built $distroless"
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^(debian:bookworm-slim|gcr.io/distroless/cc-debian12:nonroot) "
