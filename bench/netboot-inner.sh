#!/bin/sh
# bench/netboot-inner.sh DIR RUNS ROUNDS: whole `ec1 run -- /bin/true` runs with --net none and
# with the default NAT, one of each in turn (the order flipping every pair), RUNS x ROUNDS pairs:
# the rig's speed drifts by 20% and more within a run, and blocks of runs of one side (as this
# script did until 2026-12-06) measured the drift (rounds of +3% to +90%). Prints both medians
# and the median of the pairs' differences, with its quartiles.
dir=$1 runs=$2 rounds=$3
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux EC1_INITRAMFS=$dir/rootfs.cpio
export TIMEIT_LIMIT=150
T=$(mktemp -d)
median() { sort -n | awk '{v[NR]=$1} END {if (NR) printf "%.3f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
one() { # NET: one run's milliseconds, appended to $T/NET
	"$dir/timeit" 1 "$dir/ec1" run --net "$1" -- /bin/true >$T/one || { echo "bench: ec1 run --net $1 failed"; exit 1; }
	awk '/^median/ {print $2}' $T/one >>$T/$1
}
: >$T/none
: >$T/nat
pairs=$((runs * rounds))
for i in $(seq "$pairs"); do
	if [ $((i % 2)) = 1 ]; then one none; one nat; else one nat; one none; fi
	# A line now and then: the rig's stall detector takes a silent console for a lock-up.
	[ $((i % 10)) = 0 ] && echo "  $i of $pairs pairs"
done
paste $T/none $T/nat | awk '{print $2 - $1}' >$T/diff
none=$(median <$T/none)
nat=$(median <$T/nat)
d=$(median <$T/diff)
# Quartiles of the differences: the middle half of the pairs lies between them.
q() { sort -n $T/diff | awk -v p="$1" '{v[NR]=$1} END {i = int((NR - 1) * p) + 1; printf "%.1f", v[i]}'; }
echo "  runs, --net none (ms): $(tr '\n' ' ' <$T/none)"
echo "  runs, NAT (ms):        $(tr '\n' ' ' <$T/nat)"
echo "ec1 run -- /bin/true, $pairs pairs in turn: --net none median $none ms, NAT median $nat ms;" \
	"the network costs $(awk -v a="$none" -v d="$d" 'BEGIN { printf "%+.1f ms (%+.1f%%)", d, d * 100 / a }')" \
	"(median of the pairs' differences; quartiles $(q 0.25) / $(q 0.75) ms)"
