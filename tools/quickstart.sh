#!/usr/bin/env bash
# vde quick start: installs the dependencies (Debian 12), builds, then runs the main job:
# creates a virtual disk, loads 100,000 keys into it through the key-value API (vdisk load),
# reads some back (vdisk get, vdisk scan) and prints vdisk inspect.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build

vdisk=build/tools/vdisk
disk=build/demo.vdisk
keys=${VDE_DEMO_KEYS:-100000}

echo
echo "== vdisk create $disk"
"$vdisk" create "$disk" --size 10G --growable --force

echo
echo "== vdisk load: $keys keys"
{
  echo "vde-dump 1"
  awk -v n="$keys" 'BEGIN { for (i = 0; i < n; i++)
    printf "user:%08d\t{\"id\":%d,\"name\":\"user %d\",\"score\":%d}\n", i, i, i, (i * 7919) % 1000 }'
  echo "vde-dump-end $keys"
} | "$vdisk" load "$disk" -

echo
echo "== vdisk get $disk user:00004242"
"$vdisk" get "$disk" user:00004242

echo
echo "== vdisk scan $disk --prefix user:0000100 --limit 5"
"$vdisk" scan "$disk" --prefix user:0000100 --limit 5

echo
echo "== vdisk inspect $disk"
"$vdisk" inspect "$disk"
