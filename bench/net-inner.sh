#!/bin/sh
# bench/net-inner.sh DIR MIB TRIPS ROUNDS: the part of bench/net that needs a KVM that can boot a
# guest. DIR holds ec1, netbench, passt, vmlinux, rootfs.cpio. Each leg runs netbench --client in
# a guest (the host's own figure: on the host) against netbench --serve on the loopback of the
# network namespace it runs in, reached through the network's gateway address. LEGS: which
# (default all: ec1_nat qemu_user ec1_passt qemu_passt ec1_tap qemu_tap).
dir=$1 mib=$2 trips=$3 rounds=${4:-2}
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux
T=$(mktemp -d)
say() { echo "bench: $*" >&2; }
ip link set lo up 2>/dev/null
# The guests' root: ec1's busybox root with netbench added (concatenated archives are one root).
mkdir -p $T/add/bin && cp "$dir/netbench" $T/add/bin/
(cd $T/add && echo bin/netbench | cpio -o -H newc 2>/dev/null) >$T/add.cpio
cat "$dir/rootfs.cpio" $T/add.cpio >$T/root.cpio
client="/bin/netbench --client GW 5201 $mib $trips"

# serve CMD...: CMD with a netbench server on this namespace's 127.0.0.1:5201 beside it.
serve() {
	"$dir/netbench" --serve 127.0.0.1 5201 & sp=$!
	"$@"; rc=$?
	kill $sp; wait $sp 2>/dev/null
	return $rc
}
ec1_nat() {
	serve timeout -s KILL 900 "$dir/ec1" run --timeout 800 --mem 512 -i $T/root.cpio \
		-- $(echo "$client" | sed s/GW/10.0.2.2/)
}
# passt needs a host interface with a default route: a network namespace with a veth (192.0.2.2,
# gateway 192.0.2.1, which passt maps to the namespace's loopback). passt_ns CMD...: CMD there,
# with a server on the namespace's 127.0.0.1:5201.
passt_ns() {
	cat >$T/passt.sh <<EOS
ip link set lo up && ip link add ec1v0 type veth && ip addr add 192.0.2.2/24 dev ec1v0 &&
for i in \$(ip link | sed -n 's/^[0-9]*: \\([^:@]*\\).*/\\1/p'); do ip link set \$i up; done &&
ip route add default via 192.0.2.1 || { echo "bench: no namespace for passt" >&2; exit 1; }
"$dir/netbench" --serve 127.0.0.1 5201 & sp=\$!
$*; rc=\$?
kill \$sp
exit \$rc
EOS
	unshare -n sh $T/passt.sh
}
ec1_passt() {
	passt_ns PATH=$dir:\$PATH timeout -s KILL 900 "$dir/ec1" run --timeout 800 --mem 512 \
		-i $T/root.cpio --net passt -- $(echo "$client" | sed s/GW/192.0.2.1/)
}
# QEMU's guest: the same kernel and root, a shell /init that sets eth0 up as 10.0.2.15 and runs
# the client on the serial console; the network device is its only virtio device (see
# bench/blk-inner.sh: microvm's second virtio-mmio device gets no interrupts in our guest).
# qemu_script NETDEV [ADDR GW]: $T/qemu.sh runs it with -netdev NETDEV, the guest's eth0 ADDR/24
# (default 10.0.2.15) behind GW (default 10.0.2.2).
qemu_script() {
	addr=${2:-10.0.2.15} gw=${3:-10.0.2.2}
	initrd=$T/qemu-initrd-$gw.cpio
	if [ ! -f $initrd ]; then
		mkdir -p $T/qinit
		printf '%s\n' '#!/bin/sh' 'mkdir -p /proc /sys /dev' \
			'mount -t proc proc /proc; mount -t sysfs sys /sys' \
			"ip link set lo up; ip addr add $addr/24 dev eth0; ip link set eth0 up" \
			"ip route add default via $gw" "$(echo "$client" | sed s/GW/$gw/)" \
			'echo qemu-bench-done' 'reboot -f' >$T/qinit/init
		chmod +x $T/qinit/init
		(cd $T/qinit && echo init | cpio -o -H newc 2>/dev/null) >$T/qinit.cpio
		cat $T/root.cpio $T/qinit.cpio >$initrd
	fi
	cat >$T/qemu.sh <<EOS
exec timeout -s KILL 900 qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off,acpi=off \
	-accel kvm -cpu host,-arch-capabilities -m 512 -smp 1 -nodefaults -no-user-config \
	-display none -no-reboot -L /usr/share/qemu -serial file:$T/qemu-console \
	-kernel "$dir/vmlinux" -initrd $initrd \
	-append "console=ttyS0 quiet reboot=t panic=-1 rdinit=/init tsc=reliable no_timer_check" \
	-netdev $1 -device virtio-net-device,netdev=n0
EOS
	rm -f $T/qemu-console
}
# What QEMU's guest printed, or why there is nothing.
qemu_figures() {
	grep -q qemu-bench-done $T/qemu-console 2>/dev/null ||
		say "qemu gave no figures: $(head -c 300 $T/qemu-err) $(tail -c 1200 $T/qemu-console 2>/dev/null)"
	tr -d '\r' <$T/qemu-console 2>/dev/null
}
qemu_user() {
	qemu_script user,id=n0
	serve sh $T/qemu.sh >$T/qemu-err 2>&1 || say "qemu failed: $(head -c 600 $T/qemu-err)"
	qemu_figures
}
# QEMU on the same passt as ec1's leg, in the same kind of namespace, as passt documents it for
# QEMU 7.2 and later: passt on a UNIX socket of its own, -netdev stream connecting to it. The
# guest takes the namespace's address, as passt expects (static, as for QEMU's other legs).
qemu_passt() {
	# passt makes its socket as the user it runs as (--runas), so that user must reach and write
	# the socket's directory ($T is mktemp -d's 0700); without it passt exits and QEMU's guest
	# sees no carrier. QEMU, root, connects regardless.
	mkdir -p $T/ps && rm -f $T/ps/sock && chown 65534:65534 $T/ps && chmod 700 $T/ps &&
		chmod 711 $T
	qemu_script stream,id=n0,server=off,addr.type=unix,addr.path=$T/ps/sock 192.0.2.2 192.0.2.1
	cat >$T/qpasst.sh <<EOS
"$dir/passt" -f -q -1 --runas 65534:65534 -s $T/ps/sock & pp=\$!
i=0; while [ ! -S $T/ps/sock ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
sh $T/qemu.sh; rc=\$?
kill \$pp 2>/dev/null
exit \$rc
EOS
	passt_ns sh $T/qpasst.sh >$T/qemu-err 2>&1 || say "qemu failed: $(head -c 600 $T/qemu-err)"
	qemu_figures
}
# A TAP in a network namespace of its own (10.0.2.2/24 on the host's side, where the server
# listens), for ec1 (--net tap:, its checksum and segmentation offloads both ways) and QEMU
# (-netdev tap, vhost off: there is no /dev/vhost-net here).
tap() { # CMD...: CMD in a namespace with ec1tap0 up and a server on 10.0.2.2:5201
	cat >$T/tap.sh <<EOS
ip link set lo up && tunctl -t ec1tap0 >/dev/null && ip addr add 10.0.2.2/24 dev ec1tap0 &&
ip link set ec1tap0 up || { echo "bench: no TAP" >&2; exit 1; }
"$dir/netbench" --serve 10.0.2.2 5201 & sp=\$!
$*; rc=\$?
kill \$sp
exit \$rc
EOS
	unshare -n sh $T/tap.sh
}
ec1_tap() {
	tap timeout -s KILL 900 "$dir/ec1" run --timeout 800 --mem 512 -i $T/root.cpio \
		--net tap:ec1tap0 --ip 10.0.2.15/24 -- $(echo "$client" | sed s/GW/10.0.2.2/)
}
qemu_tap() {
	qemu_script tap,id=n0,ifname=ec1tap0,script=no,downscript=no,vhost=off
	tap sh $T/qemu.sh >$T/qemu-err 2>&1 || say "qemu failed: $(head -c 600 $T/qemu-err)"
	qemu_figures
}
host() { serve "$dir/netbench" --client 127.0.0.1 5201 "$mib" "$trips"; }

get() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
legs=${LEGS:-ec1_nat qemu_user ec1_passt qemu_passt ec1_tap qemu_tap}
for r in $(seq 1 "$rounds"); do
	# The order turns about each round, so that no leg always runs first on a cold rig.
	if [ $((r % 2)) = 1 ]; then order=$legs; else order=$(echo $legs | awk '{for (i = NF; i; i--) printf "%s ", $i}'); fi
	for leg in $order; do
		say "round $r: $leg"
		$leg >$T/$leg.$r || say "$leg failed: $(tail -c 600 $T/$leg.$r)"
	done
	say "round $r: host"
	host >$T/host.$r
done
best() { # KEY NAME [min]: the best figure of the rounds (largest; smallest with min)
	for r in $(seq 1 "$rounds"); do get "$1" "$T/$2.$r"; done | sort -g | if [ "${3:-}" = min ]; then head -1; else tail -1; fi
}
echo "TCP, guest = client, server on the host's loopback through the gateway; $mib MiB each way, $trips round trips, best of $rounds rounds:"
printf "  %-12s %16s %16s %16s\n" "" "guest->host MB/s" "host->guest MB/s" "round trip us"
for f in $legs host; do
	printf "  %-12s %16s %16s %16s\n" "$f" "$(best tx $f)" "$(best rx $f)" "$(best rr_us $f min)"
done
echo "  every round (tx rx rr_us):"
for f in $legs host; do
	printf "  %-12s" "$f"
	for r in $(seq 1 "$rounds"); do printf "  %s/%s/%s" "$(get tx $T/$f.$r)" "$(get rx $T/$f.$r)" "$(get rr_us $T/$f.$r)"; done
	echo
done
echo "  round trips' spread (us):"
for f in $legs host; do
	for r in $(seq 1 "$rounds"); do
		sed -n "s/^rr_spread /  $f round $r: /p" "$T/$f.$r"
	done
done
rm -rf "$T"
