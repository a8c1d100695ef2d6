#!/bin/sh
# bench/exec-inner.sh DIR RUNS RUN_RUNS MIB: the part of bench/exec that needs a KVM that can
# boot a guest. DIR holds ec1, timeit, vmlinux, rootfs.cpio.
dir=$1 runs=$2 run_runs=$3 mib=$4
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux EC1_INITRAMFS=$dir/rootfs.cpio
T=$(mktemp -d)
export EC1_RUN_DIR=$T/run
EC1=$dir/ec1
median() { awk '$1 == "median" {print $2}' "$1"; }
bytes=$((mib * 1048576))
"$dir/timeit" 1 "$EC1" start --name bench --mem 512 >$T/start || { echo "bench: ec1 start failed:"; "$EC1" start --name bench --mem 512; exit 1; }
"$dir/timeit" "$runs" "$EC1" exec bench -- /bin/true >$T/exec || { echo "bench: ec1 exec failed"; exit 1; }
"$dir/timeit" "$run_runs" "$EC1" run --mem 512 -- /bin/true >$T/cold || { echo "bench: ec1 run failed"; exit 1; }
"$dir/timeit" 3 "$EC1" exec bench -- /bin/sh -c "head -c $bytes /dev/zero" >$T/xtput
"$dir/timeit" 3 "$EC1" run --mem 512 -- /bin/sh -c "head -c $bytes /dev/zero" >$T/rtput
"$dir/timeit" 3 /bin/sh -c "head -c $bytes /dev/zero | cat" >$T/host
"$EC1" stop bench
"$dir/execloop" "$runs" >$T/api || echo "bench: execloop failed"
"$dir/timeit" "$runs" "$EC1" version >$T/version
x=$(median $T/exec) r=$(median $T/cold)
echo "round trip of /bin/true, median ms: ec1 exec $x ($runs runs) | cold ec1 run $r ($run_runs runs) | ratio $(awk -v a="$r" -v b="$x" 'BEGIN {printf "%.1fx", a / b}')"
echo "  of which: the ec1 program's own start (ec1 version) $(median $T/version) | an exec through the API, in one process (bench/execloop.c) $(median $T/api)"
echo "ec1 start (boot until exec is ready): $(median $T/start) ms"
mbs() { awk -v b="$bytes" -v ms="$(median "$1")" 'BEGIN {printf "%.0f", b / 1e6 / (ms / 1e3)}'; }
echo "stream of $mib MiB to the host, MB/s (median of 3, whole command): exec (vsock) $(mbs $T/xtput) | run (console) $(mbs $T/rtput) | host pipe $(mbs $T/host)"
rm -rf "$T"
