#!/bin/sh
# bench/boot-inner.sh DIR RUNS: the part of bench/boot that needs a KVM that can boot a guest
# (hardware, or inside the rig). DIR holds ec1, timeit, vmlinux, rootfs.cpio, qemu-initrd.cpio.
dir=$1 runs=$2
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux EC1_INITRAMFS=$dir/rootfs.cpio
EC1=$dir/ec1
T=$(mktemp -d)
t0=$(date +%s)
# Progress on stderr; every run has a time limit, so a hung run names itself.
say() { echo "bench: $* ($(($(date +%s) - t0)) s)" >&2; }
# No network on either side: QEMU's guest has none (its init would wait for one it was told of),
# so ec1's runs here are `--net none` too (bench/netboot measures what the default NAT adds).
ec1() { timeout -s KILL 150 "$EC1" run --net none --timeout 120 "$@"; }
export TIMEIT_LIMIT=150
median() { sort -n | awk '{v[NR]=$1} END {if (NR) printf "%.3f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

[ -f "$dir/qemu-initrd.cpio" ] ||
	EC1_SETUP_ONLY=1 EC1_DUMP_INITRD=$dir/qemu-initrd.cpio "$EC1" run --net none -- /bin/true ||
	{ echo "bench: ec1 could not make QEMU's initramfs"; exit 1; }
# The same kernel and initramfs (ec1's base root + init + the /bin/true description), the same
# command line, and the same virtio-console ports, under QEMU's microvm machine.
cat >$T/qemu.sh <<QEMU
exec qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off,acpi=off -accel kvm -cpu host,-arch-capabilities \
	-m 512 -smp 1 -nodefaults -no-user-config -display none -no-reboot \
	-L /usr/share/qemu -serial null \
	-kernel $dir/vmlinux -initrd $dir/qemu-initrd.cpio \
	-append "console=ttyS0 quiet reboot=t panic=-1 rdinit=/.ec1/init tsc=reliable no_timer_check cryptomgr.notests" \
	-device virtio-serial-device,max_ports=5 \
	-chardev null,id=p1 -device virtserialport,nr=1,chardev=p1,name=ec1.stdin \
	-chardev null,id=p2 -device virtserialport,nr=2,chardev=p2,name=ec1.stdout \
	-chardev null,id=p3 -device virtserialport,nr=3,chardev=p3,name=ec1.stderr \
	-chardev file,id=p4,path=$T/qemu-control -device virtserialport,nr=4,chardev=p4,name=ec1.control
QEMU
# One run of each in turn, RUNS times: the rig's speed drifts by 20% and more within a run, and
# a side timed in one block (as this script did until 2026-12-06) took whatever the rig had then
# (three runs that day gave ratios 1.89, 1.42 and 0.83).
say "ec1 run --net none -- /bin/true and qemu -M microvm, one of each in turn, x $runs"
: >$T/ec1.ms
: >$T/qemu.ms
for i in $(seq "$runs"); do
	"$dir/timeit" 1 "$EC1" run --net none -- /bin/true >$T/one || { echo "bench: ec1 run failed"; exit 1; }
	awk '/^median/ {print $2}' $T/one >>$T/ec1.ms
	"$dir/timeit" 1 sh $T/qemu.sh >$T/one ||
		{ echo "bench: qemu microvm failed:"; TIMEIT_SHOW=1 "$dir/timeit" 1 sh $T/qemu.sh; break; }
	awk '/^median/ {print $2}' $T/one >>$T/qemu.ms
done
ec1_ms=$(median <$T/ec1.ms)
qemu_ms=$(median <$T/qemu.ms)
grep -q 'exit 0' $T/qemu-control 2>/dev/null || echo "bench: WARNING: QEMU's guest did not report 'exit 0' (got: $(cat $T/qemu-control 2>/dev/null))"

say "ec1 run --timing x $runs"
for i in $(seq "$runs"); do ec1 --timing -- /bin/true 2>>$T/timing; done
field() { grep '^ec1 timing' $T/timing | sed "s/.*$1 \([-0-9.]*\).*/\1/" | median; }
guest() { grep '^ec1 timing' $T/timing | sed 's/.*guest clock \([-0-9.]*\).*/\1/' | median; }
vmm_own=$(grep '^ec1 memory' $T/timing | sed 's/.*VMM own \([-0-9.]*\).*/\1/' | median)

bytes=67108864
say "stdout throughput"
"$dir/timeit" 3 "$EC1" run --net none -- /bin/sh -c "head -c $bytes /dev/zero" >$T/tput
"$dir/timeit" 3 /bin/sh -c "head -c $bytes /dev/zero | cat" >$T/host
tput_ms=$(awk '/^median/ {print $2}' $T/tput)
host_ms=$(awk '/^median/ {print $2}' $T/host)
# The stream alone: the guest process's exec to its exit, as ec1 --timing sees it; with 4 KiB
# writes (head), 64 KiB writes (dd), and, for reference, the guest's own pipe (head | cat in the
# guest, the stream not used).
exec_exit() { # FILE CMD: median exec->exit of three runs of CMD in the guest
	f=$1
	shift
	say "  $f"
	for i in 1 2 3; do ec1 --timing -- /bin/sh -c "$*" 2>>$T/$f >/dev/null; done
	grep '^ec1 timing' $T/$f | sed 's/.*exec->exit \([-0-9.]*\).*/\1/' | median
}
stream_ms=$(exec_exit stream "head -c $bytes /dev/zero")
stream64_ms=$(exec_exit stream64 "dd if=/dev/zero bs=65536 count=$((bytes / 65536)) 2>/dev/null")
guest_pipe_ms=$(exec_exit guestpipe "head -c $bytes /dev/zero | cat >/dev/null")
guest_pipe64_ms=$(exec_exit guestpipe64 "dd if=/dev/zero bs=65536 count=$((bytes / 65536)) 2>/dev/null | cat >/dev/null")

# Where the guest kernel's boot goes: its slowest initcalls (initcall_debug), by address; bench/boot
# names them from the kernel's symbol table.
say "initcalls"
ec1 --cmdline initcall_debug -- /bin/dmesg 2>/dev/null |
	sed -n 's/.*initcall \(0x[0-9a-f]*\) returned .* after \([0-9]*\) usecs.*/\2 \1/p' |
	sort -rn | head -8 >$T/initcalls

say "done"
echo "boot+run+exit of /bin/true, median of $runs:"
echo "  ec1 run --net none      $ec1_ms ms"
echo "  qemu -M microvm         $qemu_ms ms"
echo "  ratio (qemu / ec1)      $(awk -v a="$qemu_ms" -v b="$ec1_ms" 'BEGIN {printf "%.2f", a / b}')"
echo "ec1 phases (median ms): vmm-setup $(field vmm-setup) | kernel-entry->init $(field 'kernel-entry->init') (guest clock $(guest)) | init->exec $(field 'init->exec') | exec->exit $(field 'exec->exit') | teardown $(field teardown)"
echo "ec1 VMM own memory (RSS beyond guest RAM touched, median): $vmm_own MiB"
mibs() { awk -v ms="$1" 'BEGIN {printf "%.0f", (ms > 0 ? 64 / (ms / 1000) : 0)}'; }
echo "stdout throughput, 64 MiB: ec1 $(mibs "$stream_ms") MiB/s in 4 KiB writes, $(mibs "$stream64_ms") MiB/s in 64 KiB writes (the stream: exec to exit), $(mibs "$tput_ms") MiB/s (4 KiB, whole run, boot included) | the guest's own pipe (| cat in the guest) $(mibs "$guest_pipe_ms") MiB/s in 4 KiB writes, $(mibs "$guest_pipe64_ms") in 64 KiB | host pipe (head | cat) $(mibs "$host_ms") MiB/s"
echo "slowest guest initcalls (ms, kernel clock):"
while read -r us addr; do echo "  initcall $addr $(awk -v u="$us" 'BEGIN {printf "%.1f", u / 1000}')"; done <$T/initcalls
rm -rf "$T"
