#!/bin/sh
# Makes a docker-archive image (what `docker save` writes) from Debian's
# busybox-static: one layer with /bin/busybox and its applet links, users root,
# bob (1000) and nobody. Deterministic: the same busybox gives the same image ID.
#
# Usage: scripts/mkimage-busybox.sh OUT.tar [TAG]     (TAG defaults to busybox:latest)
set -eu
out=$1
tag=${2:-busybox:latest}
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkimage-busybox: $bb missing: apt-get install busybox-static" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/home/bob" "$work/img/blobs/sha256"
cp "$bb" "$root/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:Bob:/home/bob:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nwheel:x:10:bob\nbob:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"
chown 1000:1000 "$root/home/bob"
tar --sort=name --mtime=@0 --numeric-owner -C "$root" -cf "$work/layer.tar" .
diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mv "$work/layer.tar" "$work/img/blobs/sha256/$diff"
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
printf '{"architecture":"%s","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"scripts/mkimage-busybox.sh"}]}' \
  "$arch" "$diff" >"$work/config.json"
cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/img/blobs/sha256/$cfg"
printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s"]}]' "$cfg" "$tag" "$diff" >"$work/img/manifest.json"
tar --sort=name --mtime=@0 --numeric-owner -C "$work/img" -cf "$out" manifest.json blobs
