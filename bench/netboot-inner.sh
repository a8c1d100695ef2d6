#!/bin/sh
# bench/netboot-inner.sh DIR RUNS ROUNDS: whole `ec1 run -- /bin/true` runs with --net none and
# with the default NAT, alternating rounds of RUNS each; prints each round and the best medians.
dir=$1 runs=$2 rounds=$3
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux EC1_INITRAMFS=$dir/rootfs.cpio
export TIMEIT_LIMIT=150
T=$(mktemp -d)
best_none= best_nat=
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
for r in $(seq "$rounds"); do
	for net in none nat; do
		"$dir/timeit" "$runs" "$dir/ec1" run --net $net -- /bin/true >$T/$net || { echo "bench: ec1 run --net $net failed"; exit 1; }
		m=$(awk '/^median/ {print $2}' $T/$net)
		eval "best_$net=\$(min \"\$best_$net\" $m)"
		echo "  round $r: --net $net median $m ms"
	done
done
echo "ec1 run -- /bin/true, best round's median: --net none $best_none ms, NAT $best_nat ms: the network costs $(awk -v a=$best_none -v b=$best_nat 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }')"
