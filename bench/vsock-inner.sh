#!/bin/sh
# bench/vsock-inner.sh DIR MIB ROUNDS: the part of bench/vsock that needs a KVM that can boot a
# guest. DIR holds ec1, vsocktool, vmlinux, rootfs.cpio. Legs: the guest's vsock to a host unix
# server each way, the guest's stdout through the console (to /dev/null on the host), and a
# host unix socket each way on the host itself.
dir=$1 mib=$2 rounds=${3:-2}
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux EC1_INITRAMFS=$dir/rootfs.cpio
T=$(mktemp -d)
mkdir -p $T/vt && cp "$dir/vsocktool" $T/vt/
say() { echo "bench: $*" >&2; }
get() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
ec1() { timeout -s KILL 900 "$dir/ec1" run --timeout 800 --mem 512 -V $T/vt:/mnt/vt:ro "$@"; }
for r in $(seq 1 "$rounds"); do
	say "round $r: vsock guest->host"
	"$dir/vsocktool" unix-sink $T/sink.sock & sp=$!
	ec1 --vsock 5000:$T/sink.sock -- /mnt/vt/vsocktool send 5000 "$mib" >$T/tx.$r
	kill $sp
	say "round $r: vsock host->guest"
	"$dir/vsocktool" unix-source $T/source.sock "$mib" & sp=$!
	ec1 --vsock 5001:$T/source.sock -- /mnt/vt/vsocktool recv 5001 >$T/rx.$r
	kill $sp
	say "round $r: console stdout"
	ec1 -- /mnt/vt/vsocktool gen "$mib" 2>$T/con.$r >/dev/null
	say "round $r: host unix socket"
	"$dir/vsocktool" unix-sink $T/hsink.sock & sp=$!
	"$dir/vsocktool" unix-send $T/hsink.sock "$mib" >$T/htx.$r
	kill $sp
	"$dir/vsocktool" unix-source $T/hsource.sock "$mib" & sp=$!
	"$dir/vsocktool" unix-recv $T/hsource.sock >$T/hrx.$r
	kill $sp
done
best() { for r in $(seq 1 "$rounds"); do get "$1" "$T/$2.$r"; done | sort -g | tail -1; }
every() { for r in $(seq 1 "$rounds"); do printf " %s" "$(get "$1" "$T/$2.$r")"; done; }
echo "streams, $mib MiB each, MB/s, best of $rounds rounds (every round after it):"
echo "  vsock guest->host    $(best tx tx)  ($(every tx tx) )"
echo "  vsock host->guest    $(best rx rx)  ($(every rx rx) )"
echo "  console stdout       $(best stdout con)  ($(every stdout con) )"
echo "  host unix socket ->  $(best tx htx)  ($(every tx htx) )"
echo "  host unix socket <-  $(best rx hrx)  ($(every rx hrx) )"
rm -rf "$T"
