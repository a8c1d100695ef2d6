#!/bin/sh
# bench/fs-inner.sh DIR WORK SIZE_MIB FILES OUT: the part of bench/fs that needs a KVM that can
# boot a guest (hardware, or inside the rig). DIR holds ec1, vmlinux, rootfs.cpio; WORK is the host
# directory shared with the guest. Each measurement is made through virtio-fs in the guest and
# directly on the host, in the same environment and run; the ratio is guest / host. The guest
# kernel's profile of each read pass goes to OUT/prof-read.N (bench/fs names its functions).
dir=$1 work=$2 size=$3 files=$4 out=$5
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux EC1_INITRAMFS=$dir/rootfs.cpio
mkdir -p "$work/share" "$work/host"

# The workload, the same text for host and guest: write, then read three times, each pass after
# dropping the page cache where the kernel lets us (the guest's always: it may otherwise keep its
# cache of an unchanged file from one open to the next, and the read would not reach the host);
# the median pass is compared, as single passes swing by 2x under emulation. Then FILES empty
# files created, stat'ed and unlinked. In the guest, a second argument names where the kernel's
# profile of each read pass goes, PREFIX.1 to .3 (the guest kernel runs with profile=1).
cat >"$work/share/load.sh" <<LOAD
cd "\$1"
up() { awk '{print \$1}' /proc/uptime; }
t0=\$(up); dd if=/dev/zero of=big bs=1M count=$size conv=fsync 2>/dev/null; t1=\$(up)
echo "write: \$t0 \$t1"
for pass in 1 2 3; do
	sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	[ -z "\$2" ] || echo >/proc/profile
	t0=\$(up); dd if=big of=/dev/null bs=1M 2>/dev/null; t1=\$(up)
	[ -z "\$2" ] || cat /proc/profile >"\$2.\$pass"
	echo "read: \$t0 \$t1"
done
rm -f big
mkdir meta && cd meta
t0=\$(up)
i=0; while [ \$i -lt $files ]; do : >f\$i; i=\$((i + 1)); done
stat -c %s f* >/dev/null
rm -f f*
t1=\$(up)
cd .. && rmdir meta
echo "meta: \$t0 \$t1"
LOAD
# Guest-only references, in the same VM after the workload, each the median of three passes: a
# file read through virtio-fs while the guest's page cache holds it (written, left three seconds
# so that the server trusts its times, and read once: then only the copy to the reader is left),
# and a file on the guest's own tmpfs. What the first read costs beyond them is filling the
# guest's page cache.
cat >"$work/share/refs.sh" <<REFS
up() { awk '{print \$1}' /proc/uptime; }
reads() { # KIND FILE
	for pass in 1 2 3; do
		t0=\$(up); dd if=\$2 of=/dev/null bs=1M 2>/dev/null; t1=\$(up)
		echo "\$1: \$t0 \$t1"
	done
}
dd if=/dev/zero of="\$1/ref" bs=1M count=$size conv=fsync 2>/dev/null
sleep 3; cat "\$1/ref" >/dev/null
reads cached "\$1/ref"
rm -f "\$1/ref"; echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/zero of=/tmp/ref bs=1M count=$size 2>/dev/null
reads tmpfs /tmp/ref
rm -f /tmp/ref
REFS
sh "$work/share/load.sh" "$work/host" >"$work/host.out" 2>&1
# The guest gets twice the file's size in RAM, so that its page cache reads the file through
# without reclaiming memory half-way (the host, the rig, has plenty); at least 1 GiB.
guest_mib=$((size * 2 > 1024 ? size * 2 : 1024))
"$dir/ec1" run --mem $guest_mib --timing --timeout 3000 --cmdline profile=1 \
	--volume "$work/share:/mnt/s" -- \
	/bin/sh -c 'sh /mnt/s/load.sh /mnt/s /mnt/s/prof-read && sh /mnt/s/refs.sh /mnt/s' \
	>"$work/guest.out" 2>&1 || { echo "bench/fs: the guest run failed:"; cat "$work/guest.out"; exit 1; }

report() { # LABEL HOST_RATE GUEST_RATE UNIT
	awk -v l="$1" -v h="$2" -v g="$3" -v u="$4" 'BEGIN {
		printf "  %-34s guest %10.1f %s   host %10.1f %s   guest/host %.2f\n", l, g, u, h, u, (h > 0 ? g / h : 0) }'
}
rate() { # FILE KIND: MB/s from the "KIND: T0 T1" lines (seconds of uptime), the median of them
	grep "^$2: " "$1" | awk -v m="$size" '{ d = $3 - $2; printf "%.1f\n", (d > 0 ? m * 1.048576 / d : 0) }' |
		sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
passes() { grep "^read: " "$1" | awk -v m="$size" '{ d = $3 - $2; printf " %.0f", (d > 0 ? m * 1.048576 / d : 0) }'; }
meta() { grep '^meta: ' "$1" | awk -v n="$files" '{ d = $3 - $2; printf "%.0f", (d > 0 ? n / d : 0) }'; }
report "sequential write, $size MiB" "$(rate "$work/host.out" write)" "$(rate "$work/guest.out" write)" MB/s
report "sequential read, $size MiB (median)" "$(rate "$work/host.out" read)" "$(rate "$work/guest.out" read)" MB/s
echo "    read passes, MB/s: guest$(passes "$work/guest.out"), host$(passes "$work/host.out")"
echo "    guest references (median MB/s): virtio-fs with the file in the guest's page cache" \
	"$(rate "$work/guest.out" cached); the guest's own tmpfs $(rate "$work/guest.out" tmpfs)"
echo "    guest RAM $guest_mib MiB; the VMM's own view: $(grep '^ec1 virtio-fs ' "$work/guest.out")"
report "create+stat+unlink, $files files" "$(meta "$work/host.out")" "$(meta "$work/guest.out")" files/s
mkdir -p "$out" && cp "$work/share"/prof-read.* "$out/" 2>/dev/null || true
