#!/usr/bin/env bash
# Download a standard CycleGAN data set from the public Berkeley host into the layout
# `translate train` reads: DEST/NAME/{trainA,trainB,testA,testB}.
#   scripts/download_cyclegan_dataset.sh NAME [DEST]        (DEST default: $ENSO_DATA, else ./data)
# NAME: apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo
#       vangogh2photo maps cityscapes facades iphone2dslr_flower ae_photos
# The archive is downloaded and unpacked in a temporary folder and moved into place only when
# complete; an existing DEST/NAME is never overwritten. CYCLEGAN_URL overrides the host
# (for a mirror, or file:///path/to/zips for an offline copy).
set -euo pipefail
NAMES="apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo vangogh2photo maps cityscapes facades iphone2dslr_flower ae_photos"
die() { echo "download_cyclegan_dataset: $*" >&2; exit 2; }
name="${1:-}"
[ -n "$name" ] || die "usage: download_cyclegan_dataset.sh NAME [DEST]; NAME is one of: $NAMES"
case " $NAMES " in *" $name "*) ;; *) die "unknown data set '$name'; choose one of: $NAMES" ;; esac
dest="${2:-${ENSO_DATA:-./data}}"
target="$dest/$name"
[ ! -e "$target" ] || die "$target exists; remove it or choose another DEST"
url="${CYCLEGAN_URL:-http://efrosgans.eecs.berkeley.edu/cyclegan/datasets}/$name.zip"
command -v curl >/dev/null || die "curl is needed to download $url"
command -v unzip >/dev/null || die "unzip is needed to unpack $name.zip"
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.$name.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "downloading $url"
curl -fL --retry 3 -o "$tmp/$name.zip" "$url" || die "download of $url failed (no network? set CYCLEGAN_URL to a mirror)"
unzip -q "$tmp/$name.zip" -d "$tmp/unpacked" || die "$name.zip is damaged; run again"
src="$tmp/unpacked/$name"
[ -d "$src" ] || src="$tmp/unpacked"
for split in trainA trainB testA testB; do
  [ -d "$src/$split" ] || die "$name.zip has no $split/ folder; it is not a CycleGAN data set"
done
mv "$src" "$target"
echo "$target: $(for s in trainA trainB testA testB; do printf '%s %s  ' "$s" "$(ls "$target/$s" | wc -l)"; done)"
