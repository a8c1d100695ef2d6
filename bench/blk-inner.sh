#!/bin/sh
# bench/blk-inner.sh DIR WORK MIB READS [ROUNDS]: the part of bench/blk that needs a KVM that can boot a
# guest. DIR holds ec1, blkbench, qemu-img, vmlinux, rootfs.cpio.
dir=$1 work=$2 mib=$3 reads=$4 rounds=${5:-2} jobs=${JOBS:-16}
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux
mkdir -p "$work" && T=$work
q=$dir/qemu-img; [ -x "$q" ] || q=qemu-img
say() { echo "bench: $*" >&2; }
# The guest's root: ec1's busybox root with blkbench added (concatenated archives are one root).
mkdir -p $T/add/bin && cp "$dir/blkbench" $T/add/bin/
(cd $T/add && echo bin/blkbench | cpio -o -H newc 2>/dev/null) >$T/add.cpio
cat "$dir/rootfs.cpio" $T/add.cpio >$T/root.cpio
# DIRECT=PATH: the image is PATH (a block device, or a file on a file system that takes O_DIRECT),
# raw only, opened past the host's page cache by both: ec1's ,direct and QEMU's cache=none.
img=${DIRECT:-$T/d.img} qcache=writeback
[ -z "${DIRECT:-}" ] || qcache=none
# A DIRECT that is no block device is a file, made (sparse) when missing.
[ -z "${DIRECT:-}" ] || [ -b "$DIRECT" ] || [ -f "$DIRECT" ] ||
	dd if=/dev/zero of="$DIRECT" bs=1M count=0 seek="$mib" 2>/dev/null
image() { # FORMAT: a fresh image of MIB
	if [ -n "${DIRECT:-}" ]; then return; fi
	rm -f $img
	if [ "$1" = raw ]; then dd if=/dev/zero of=$img bs=1M count=0 seek="$mib" 2>/dev/null
	else "$q" create -q -f qcow2 $img "${mib}M"; fi
}
ec1_run() { # FORMAT
	image "$1"
	timeout -s KILL 1800 "$dir/ec1" run --timeout 1700 --mem 512 -i $T/root.cpio -k "$dir/vmlinux" \
		--disk $img,format="$1"${DIRECT:+,direct} -- /bin/blkbench /dev/vda "$mib" "$reads" "$jobs"
}
qemu_run() { # FORMAT
	image "$1"
	# QEMU's guest: the same kernel and busybox root with blkbench, and a shell /init that runs
	# it on the serial console. Only the disk is a virtio device: with acpi=off, microvm's second
	# virtio-mmio device gets no interrupts in our guest (seen 2026-12-02: with a console device
	# beside the disk, whichever of the two is second never completes a request).
	mkdir -p $T/qinit
	printf '%s\n' '#!/bin/sh' 'mkdir -p /proc /sys /dev' \
		'mount -t proc proc /proc; mount -t sysfs sys /sys' \
		'mount -t devtmpfs dev /dev 2>/dev/null' \
		"/bin/blkbench /dev/vda $mib $reads $jobs" 'echo qemu-bench-done' 'reboot -f' >$T/qinit/init
	chmod +x $T/qinit/init
	(cd $T/qinit && echo init | cpio -o -H newc 2>/dev/null) >$T/qinit.cpio
	cat $T/root.cpio $T/qinit.cpio >$T/qemu-initrd.cpio
	rm -f $T/qemu-console
	timeout -s KILL 1800 qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off,acpi=off -accel kvm \
		-cpu host,-arch-capabilities -m 512 -smp 1 -nodefaults -no-user-config -display none \
		-no-reboot -L /usr/share/qemu -serial file:$T/qemu-console -kernel "$dir/vmlinux" \
		-initrd $T/qemu-initrd.cpio \
		-append "console=ttyS0 quiet reboot=t panic=-1 rdinit=/init tsc=reliable no_timer_check" \
		-drive id=d0,file=$img,format="$1",if=none,cache=$qcache,aio=threads \
		-device virtio-blk-device,drive=d0 >$T/qemu-err 2>&1 ||
		echo "bench: qemu failed: $(head -c 600 $T/qemu-err)" >&2
	grep -q qemu-bench-done $T/qemu-console 2>/dev/null ||
		echo "bench: qemu gave no figures: $(head -c 300 $T/qemu-err) $(tail -c 1200 $T/qemu-console 2>/dev/null)" >&2
	tr -d '\r' <$T/qemu-console 2>/dev/null
}
get() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
host_run() { image raw; "$dir/blkbench" $img "$mib" "$reads" "$jobs"; }
# ROUNDS rounds, the order turned about each time (ec1 first, then QEMU first), so that neither
# side always runs first on a cold rig; each figure is the best of the rounds. The host's own
# figure is taken right before and right after ec1's raw run, so that the target's ratio compares
# figures seconds apart (the rig's speed moves up to 1.7x between rounds, minutes apart).
formats="raw qcow2"; [ -z "${DIRECT:-}" ] || formats=raw
# One untimed pass on the host first: a fresh rig's first touch of its memory made the first
# host figure up to 5x low (277 against 1,347 MB/s seconds later, 2026-12-07).
say "warming up"; host_run >/dev/null
# And one small untimed run of each VMM: a fresh rig's first guest pays the rig's one-time costs
# (its emulator translating the nested KVM's paths for the first time): ec1's first raw round
# ran at half its later speed on every figure (2026-12-07: 333 MB/s and 1,616 reads/s against
# 698 and 3,091 a round later), whichever VMM came first would.
say "warming up the VMMs"
full_mib=$mib full_reads=$reads mib=64 reads=200
ec1_run raw >/dev/null 2>&1
qemu_run raw >/dev/null 2>&1
mib=$full_mib reads=$full_reads
for r in $(seq 1 "$rounds"); do
	for fmt in $formats; do
		if [ $((r % 2)) = 1 ]; then order="ec1 qemu"; else order="qemu ec1"; fi
		for who in $order; do
			[ "$who-$fmt" != ec1-raw ] || { say "round $r: host"; host_run >$T/host-pre.$r; }
			say "round $r: $who $fmt"; ${who}_run $fmt >$T/$who-$fmt.$r
			[ "$who-$fmt" != ec1-raw ] || { say "round $r: host"; host_run >$T/host.$r; }
		done
	done
done
best() { # KEY NAME: the largest figure of the rounds
	for r in $(seq 1 "$rounds"); do get "$1" "$T/$2.$r"; done | sort -g | tail -1
}
echo "disk I/O, ${mib} MiB image, 1 MiB requests, $reads random 4 KiB reads one at a time and from $jobs processes at once, best of $rounds rounds:"
printf "  %-12s %14s %14s %16s %18s\n" "" "seqread MB/s" "seqwrite MB/s" "randread IOPS" "randread x$jobs IOPS"
rows="ec1-raw qemu-raw ec1-qcow2 qemu-qcow2 host"; [ -z "${DIRECT:-}" ] || rows="ec1-raw qemu-raw host"
for f in $rows; do
	printf "  %-12s %14s %14s %16s %18s\n" "$f" "$(best seqread $f)" "$(best seqwrite $f)" "$(best randread $f)" \
		"$(best randreadqd $f)"
done
echo "  every round (seqread seqwrite randread randread-x$jobs):"
for f in $rows; do
	printf "  %-12s" "$f"
	for r in $(seq 1 "$rounds"); do printf "  %s/%s/%s/%s" "$(get seqread $T/$f.$r)" "$(get seqwrite $T/$f.$r)" "$(get randread $T/$f.$r)" "$(get randreadqd $T/$f.$r)"; done
	echo
done
# The target's ratio round by round, against the mean of the host's figures taken just before
# and just after ec1's raw run.
printf "  ec1-raw seqread / host's (its mean before and after), each round:"
for r in $(seq 1 "$rounds"); do
	printf " %s%%" "$(awk -v a="$(get seqread $T/ec1-raw.$r)" -v b="$(get seqread $T/host-pre.$r)" \
		-v c="$(get seqread $T/host.$r)" \
		'BEGIN { if (b + c > 0) printf "%.0f", 200 * a / (b + c); else printf "?" }')"
done
echo
printf "  host's seqread before / after ec1's raw run, each round:"
for r in $(seq 1 "$rounds"); do printf " %s/%s" "$(get seqread $T/host-pre.$r)" "$(get seqread $T/host.$r)"; done
echo
echo "  (host: $(get mode $T/host.1) I/O on ${DIRECT:-the image file}${DIRECT:+; ec1 ,direct, QEMU cache=none})"
rm -rf "$T"
