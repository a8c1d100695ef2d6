#!/bin/sh
# bench/blk-inner.sh DIR WORK MIB READS: the part of bench/blk that needs a KVM that can boot a
# guest. DIR holds ec1, blkbench, qemu-img, vmlinux, rootfs.cpio.
dir=$1 work=$2 mib=$3 reads=$4
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux
mkdir -p "$work" && T=$work
q=$dir/qemu-img; [ -x "$q" ] || q=qemu-img
say() { echo "bench: $*" >&2; }
# The guest's root: ec1's busybox root with blkbench added (concatenated archives are one root).
mkdir -p $T/add/bin && cp "$dir/blkbench" $T/add/bin/
(cd $T/add && echo bin/blkbench | cpio -o -H newc 2>/dev/null) >$T/add.cpio
cat "$dir/rootfs.cpio" $T/add.cpio >$T/root.cpio
image() { # FORMAT: a fresh image of MIB
	rm -f $T/d.img
	if [ "$1" = raw ]; then dd if=/dev/zero of=$T/d.img bs=1M count=0 seek="$mib" 2>/dev/null
	else "$q" create -q -f qcow2 $T/d.img "${mib}M"; fi
}
ec1_run() { # FORMAT
	image "$1"
	timeout -s KILL 1800 "$dir/ec1" run --timeout 1700 --mem 512 -i $T/root.cpio -k "$dir/vmlinux" \
		--disk $T/d.img,format="$1" -- /bin/blkbench /dev/vda "$mib" "$reads"
}
qemu_run() { # FORMAT
	image "$1"
	# ec1's initramfs for the same command (init and its description included), given to QEMU.
	EC1_DUMP_INITRD=$T/qemu-initrd.cpio EC1_SETUP_ONLY=1 EC1_ALLOW_PVM=1 "$dir/ec1" run \
		-i $T/root.cpio -k "$dir/vmlinux" --disk $T/d.img,format="$1" -- \
		/bin/blkbench /dev/vda "$mib" "$reads" >/dev/null 2>$T/dump-err ||
		{ echo "bench: dumping the initramfs for QEMU failed: $(cat $T/dump-err)" >&2; return; }
	rm -f $T/qemu-out
	# Known problem (2026-12-02): with the disk added, QEMU's guest finds no console port
	# (ec1-init: /dev/vport0p1 missing), so no QEMU figures yet; its console is shown.
	timeout -s KILL 600 qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off,acpi=off -accel kvm \
		-cpu host,-arch-capabilities -m 512 -smp 1 -nodefaults -no-user-config -display none \
		-no-reboot -L /usr/share/qemu -serial file:$T/qemu-console -kernel "$dir/vmlinux" -initrd $T/qemu-initrd.cpio \
		-drive id=d0,file=$T/d.img,format="$1",if=none,cache=writeback,aio=threads \
		-device virtio-blk-device,drive=d0 \
		-append "console=ttyS0 reboot=t panic=-1 rdinit=/.ec1/init tsc=reliable no_timer_check" \
		-device virtio-serial-device,max_ports=5 \
		-chardev null,id=p1 -device virtserialport,nr=1,chardev=p1,name=ec1.stdin \
		-chardev file,id=p2,path=$T/qemu-out -device virtserialport,nr=2,chardev=p2,name=ec1.stdout \
		-chardev null,id=p3 -device virtserialport,nr=3,chardev=p3,name=ec1.stderr \
		-chardev null,id=p4 -device virtserialport,nr=4,chardev=p4,name=ec1.control >$T/qemu-err 2>&1 ||
		echo "bench: qemu failed: $(head -c 600 $T/qemu-err)" >&2
	[ -s $T/qemu-out ] || echo "bench: qemu gave no figures: $(head -c 300 $T/qemu-err) $(tail -c 1200 $T/qemu-console)" >&2
	cat $T/qemu-out 2>/dev/null
}
get() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
for fmt in raw qcow2; do
	say "ec1 $fmt"; ec1_run $fmt >$T/ec1-$fmt
	say "qemu $fmt"; qemu_run $fmt >$T/qemu-$fmt
done
say "host"
image raw; "$dir/blkbench" $T/d.img "$mib" "$reads" >$T/host
echo "disk I/O, ${mib} MiB image, 1 MiB requests, $reads random 4 KiB reads:"
printf "  %-12s %14s %14s %16s\n" "" "seqread MB/s" "seqwrite MB/s" "randread IOPS"
for f in ec1-raw qemu-raw ec1-qcow2 qemu-qcow2 host; do
	printf "  %-12s %14s %14s %16s\n" "$f" "$(get seqread $T/$f)" "$(get seqwrite $T/$f)" "$(get randread $T/$f)"
done
echo "  (host: $(get mode $T/host) I/O on the image file)"
rm -rf "$T"
