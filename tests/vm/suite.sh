#!/bin/sh
# VM test suite: every test boots a real microVM with `ec1 run`. Runs where a guest can boot —
# on hardware KVM, or inside the test rig on a PVM host (tests/run decides). Prints one
# "PASS: name", "FAIL: name: why" or "SKIP: name: why" line per test.
# usage: suite.sh DIR   (DIR holds ec1, hello, libec1.so.0, vmlinux, rootfs.cpio)
dir=$1
# The NAT tests reach servers on 127.0.0.1: the rig starts with its loopback down.
ip link set lo up 2>/dev/null
export LD_LIBRARY_PATH=$dir EC1_KERNEL=$dir/vmlinux EC1_INITRAMFS=$dir/rootfs.cpio
# A system call outside a VMM thread's seccomp allow-list kills ec1 here, so that every test also
# shows the lists miss nothing its VM needs (the default answers EPERM).
export EC1_SECCOMP=kill
EC1=$dir/ec1
T=$(mktemp -d)
only=${EC1_TEST_ONLY:-}

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$2], got [$3]"; fi; }
# ec1's own --timeout stops a hung guest; the outer one turns a hung ec1 into a failure, not a hang.
run() { timeout -s KILL 180 "$EC1" run --timeout 120 "$@"; }
selected() { [ -z "$only" ] || echo " $only " | grep -q " $1 "; }
ec1_pid() { for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = ec1 ] && echo ${p#/proc/}; done; }
# Terminals for ptydrive: the rig mounts no devpts of its own.
ptys() {
	[ -e /dev/pts/ptmx ] && return
	mkdir -p /dev/pts && mount -t devpts -o ptmxmode=0666 devpts /dev/pts
	[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
}
# fds PID: how many descriptors it holds; ticks PID: its CPU time so far (user + system).
fds() { ls /proc/$1/fd | wc -l; }
ticks() { awk '{print $14 + $15}' /proc/$1/stat; }

t_run_prints_echo_output() { check $name "hello world" "$(run -- /bin/echo hello world)"; }
t_run_status_zero() { run -- /bin/true; check $name 0 $?; }
t_run_propagates_exit_status() { run -- /bin/sh -c 'exit 7'; check $name 7 $?; }
t_run_missing_binary_is_127() { run -- /no/such/program 2>$T/err; check $name 127 $?; }
t_run_not_executable_is_126() { run -- /etc/passwd 2>$T/err; check $name 126 $?; }
t_run_killed_by_signal_is_128_plus_n() { run -- /bin/sh -c 'kill -9 $$'; check $name 137 $?; }
t_run_applies_env() { check $name "bar baz" "$(run --env FOO=bar --env X=baz -- /bin/sh -c 'echo $FOO $X')"; }
t_run_applies_workdir() { check $name /tmp "$(run --workdir /tmp -- /bin/pwd)"; }
t_run_bad_workdir_is_125() { run --workdir /nonexistent -- /bin/true 2>$T/err; check $name 125 $?; }
t_run_two_cpus_visible() { check $name 2 "$(run --cpus 2 -- nproc)"; }
t_run_mem_256_visible() {
	kb=$(run --mem 256 -- /bin/sh -c "awk '/MemTotal/ {print \$2}' /proc/meminfo")
	if [ -n "$kb" ] && [ "$kb" -gt 200000 ] && [ "$kb" -le 262144 ]; then pass $name
	else fail $name "MemTotal ${kb:-?} kB, expected about 256 MiB"; fi
}
t_run_ram_above_4gib_carries_every_devices_io() {
	# 4.5 GiB: 3 GiB below the MMIO hole and 1.5 GiB from 4 GiB up, where the guest's allocator
	# puts page cache and user pages first. A disk copied to a disk, a volume's file copied in
	# the volume, a page fetched through the NAT and the console's stdin all go through buffers
	# there; each arrives whole (sha256). The guest's RAM is touched only as it is used.
	head -c 33554432 /dev/urandom >$T/hi.img
	dd if=/dev/zero of=$T/hi2.img bs=1M count=32 2>/dev/null
	rm -rf $T/hv $T/hw && mkdir -p $T/hv $T/hw && cp $T/hi.img $T/hv/f && head -c 4194304 /dev/urandom >$T/hw/p
	want=$(sha256sum <$T/hi.img | cut -c1-64) page=$(sha256sum <$T/hw/p | cut -c1-64)
	httpd -f -p 127.0.0.1:18096 -h $T/hw & hp=$!
	run --mem 4608 --disk $T/hi.img --disk $T/hi2.img -V $T/hv:/mnt/v -- /bin/sh -c '
		awk "/^MemTotal/ {print \$2}" /proc/meminfo; grep "System RAM" /proc/iomem | tail -n 1 | tr -d " "
		dd if=/dev/vda of=/dev/vdb bs=1M 2>/dev/null && sync && cp /mnt/v/f /mnt/v/g && sync
		echo 3 >/proc/sys/vm/drop_caches; sha256sum </dev/vdb | cut -c1-64
		wget -q -O - http://10.0.2.2:18096/p | sha256sum | cut -c1-64; sha256sum | cut -c1-64' \
		<$T/hi.img >$T/hout 2>$T/err
	rc=$?
	kill $hp; wait $hp 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	kb=$(sed -n 1p $T/hout)
	host="$(sha256sum <$T/hi2.img | cut -c1-64) $(sha256sum <$T/hv/g 2>/dev/null | cut -c1-64)"
	check $name "0|big|100000000-15fffffff:SystemRAM|$want|$page|$want|$want $want" \
		"$rc|$([ "${kb:-0}" -gt 4400000 ] && echo big)|$(sed -n 2,5p $T/hout | paste -sd '|')|$host"
	rm -rf $T/hi.img $T/hi2.img $T/hv $T/hw $T/hout
}
t_run_guest_halt_and_poweroff_end_the_run() {
	# The kernel halted (poweroff -f, which turns into a halt on a machine without ACPI, and
	# halt -f on two vCPUs): the run ends at once, 125, naming the halt, not at the timeout.
	# busybox poweroff, halt and reboot ask init: the process gets SIGTERM, 143. The halt line
	# written by a process (not the kernel halting) ends nothing.
	run --timeout 60 -- /bin/sh -c 'poweroff -f; sleep 100' 2>$T/e1; r1=$?
	run --timeout 60 --cpus 2 -- /bin/sh -c 'halt -f; sleep 100' 2>$T/e2; r2=$?
	run --timeout 60 -- /bin/sh -c 'poweroff; sleep 100' 2>$T/e3; r3=$?
	run --timeout 60 -- /bin/sh -c 'halt; sleep 100' 2>/dev/null; r4=$?
	run --timeout 60 -- /bin/sh -c 'reboot; sleep 100' 2>/dev/null; r5=$?
	out=$(run --timeout 60 -- /bin/sh -c 'echo "reboot: System halted" >/dev/console; sleep 1; echo after' 2>&1); r6=$?
	check $name "125 1 125 1 143 143 143 0 after" \
		"$r1 $(grep -c 'the guest halted: its kernel stopped every CPU' $T/e1) $r2 $(grep -c 'the guest halted' $T/e2) $r3 $r4 $r5 $r6 $out"
	[ "$r1$r2" = 125125 ] || cat $T/e1 $T/e2
}
t_run_stdin_reaches_process() { check $name "abc" "$(echo abc | run -- /bin/cat)"; }
t_run_stdin_eof_ends_read() { check $name 0 "$(run -- /bin/sh -c 'wc -c' </dev/null | tr -d ' ')"; }
t_run_stdout_stderr_kept_apart() {
	run -- /bin/sh -c 'echo out; echo err >&2' >$T/o 2>$T/e
	check $name "out|err" "$(cat $T/o)|$(cat $T/e)"
}
t_run_64mib_stdin_and_stdout_roundtrip() {
	head -c 67108864 /dev/urandom >$T/in
	run --mem 256 -- /bin/cat <$T/in >$T/out
	check $name "$(sha256sum <$T/in | cut -c1-64)" "$(sha256sum <$T/out | cut -c1-64)"
}
t_run_64mib_stdin_hashed_in_guest() {
	[ -s $T/in ] || head -c 67108864 /dev/urandom >$T/in # when run on its own
	check $name "$(sha256sum <$T/in | cut -c1-64)" "$(run -- /bin/sh -c 'sha256sum | cut -c1-64' <$T/in)"
}
t_run_64mib_stdout_from_guest() {
	want=$(head -c 67108864 /dev/zero | sha256sum | cut -c1-64)
	check $name "$want" "$(run -- /bin/sh -c 'head -c 67108864 /dev/zero' | sha256sum | cut -c1-64)"
}
t_run_timeout_stops_hung_guest() {
	run --timeout 3 -- /bin/sleep 1000 2>$T/err; rc=$?
	if [ $rc = 125 ] && grep -q timeout $T/err; then pass $name; else fail $name "rc $rc, stderr: $(cat $T/err)"; fi
}
t_run_timeout_with_stdout_blocked() {
	# Nobody reads the output, so the guest's writes back up into ec1: --timeout must still end it.
	mkfifo $T/fifo && exec 7<>$T/fifo
	run --timeout 8 -- yes >$T/fifo 2>$T/err; rc=$?
	exec 7<&-
	if [ $rc = 125 ] && grep -q timeout $T/err; then pass $name; else fail $name "rc $rc, stderr: $(cat $T/err)"; fi
}
t_run_timeout_with_serial_console_blocked() {
	# --console copies the guest kernel's console to stderr. The guest floods it, and its stderr
	# is a one-page pipe nobody reads for 45 s: --timeout must still stop and tear down the VM at
	# 20 s (it once waited for the blocked write, which held the VM's lock). At 30 s only ec1's
	# main thread may be left, in its final message.
	rm -f $T/serr
	timeout -s KILL 180 "$dir/smallpipe" 45 $T/serr "$EC1" run --console --timeout 20 \
		--cmdline printk.devkmsg=on -- /bin/sh -c \
		'while :; do echo "flood ................................................" >/dev/kmsg; done' & bg=$!
	sleep 30
	threads=$(ls /proc/$(ec1_pid)/task 2>/dev/null | wc -l)
	wait $bg; rc=$?
	bytes=$(wc -c <$T/serr)
	if [ $rc = 125 ] && grep -q timeout $T/serr && [ "$threads" = 1 ] && [ "$bytes" -ge 4096 ]
	then pass $name; else fail $name "rc $rc, $threads threads at 30 s, $bytes bytes: $(grep -v flood $T/serr | head -c 300)"; fi
}
t_run_stdout_complete_to_slow_reader() {
	check $name 4194304 "$(run -- /bin/sh -c 'head -c 4194304 /dev/zero' | { sleep 3; wc -c; } | tr -d ' ')"
}
t_run_reader_gone_fails_the_writers_next_write() {
	# The host's reader of stdout goes away (`ec1 run -- yes | head -n 1`): the process's next
	# write fails as it would locally, SIGPIPE (141), or EPIPE where it ignores SIGPIPE, not a
	# write into nothing until the timeout. What came before arrives; stderr on its own too.
	{ run --timeout 60 -- yes; echo $? >$T/st1; } | head -n 1 >$T/o1
	{ run --timeout 60 -- seq 1000000; echo $? >$T/st2; } | head -n 3 | tr '\n' ' ' >$T/o2
	{ run --timeout 60 -- /bin/sh -c 'trap "" PIPE; yes; echo after >&2' 2>$T/e3
	  echo $? >$T/st3; } | head -c 1 >/dev/null
	{ run --timeout 60 -- /bin/sh -c 'yes >&2' 2>&1 >/dev/null; echo $? >$T/st4; } | head -n 1 >/dev/null
	# Output to a file system that fills up: said, and the process's writes fail the same way.
	mkdir -p $T/small && mount -t tmpfs -o size=64k small $T/small
	run --timeout 60 -- seq 1000000 >$T/small/out 2>$T/e5; st5=$?
	umount $T/small
	check $name "141 y|141 1 2 3 |0 1 after|141|141 1" \
		"$(cat $T/st1) $(cat $T/o1)|$(cat $T/st2) $(cat $T/o2)|$(cat $T/st3) $(grep -c 'Broken pipe' $T/e3) $(tail -n 1 $T/e3)|$(cat $T/st4)|$st5 $(grep -c 'ec1.stdout: writing to its host fd: No space left on device' $T/e5)"
}
t_run_closed_stdio_stand_in_for_dev_null() {
	# ec1 started with stdin, stdout or stderr closed: the stream is /dev/null (no input, output
	# dropped), not whatever ec1 opened first under that number. A disk stays as it was.
	head -c 1048576 /dev/urandom >$T/cs.img
	want=$(sha256sum <$T/cs.img | cut -c1-64)
	run --timeout 60 -- cat <&-; r1=$?
	run --timeout 60 --disk $T/cs.img -- /bin/sh -c 'seq 100000; seq 100000 >&2' >&- 2>&-; r2=$?
	run --timeout 60 --disk $T/cs.img -- /bin/sh -c 'cat; seq 1000' <&- >&- 2>&-; r3=$?
	check $name "0 0 0 $want" "$r1 $r2 $r3 $(sha256sum <$T/cs.img | cut -c1-64)"
	rm -f $T/cs.img
}
t_run_on_a_terminal_lines_eof_and_ctrl_c() {
	# ec1 run on a terminal (tests/vm/ptydrive.c types to it; the terminal stays in its own
	# mode): a typed line reaches CMD's stdin, Ctrl-D ends its input, Ctrl-C to ec1 reaches CMD
	# as SIGTERM (its trap runs, its status is ec1's).
	[ -x "$dir/ptydrive" ] || { echo "SKIP: $name: no ptydrive built"; return; }
	ptys
	out=$("$dir/ptydrive" 24 80 'w:ready' 's:hello\r' 'w:got hello' 's:more\r' 's:\x04' \
		'w:eof 5' 's:\x03' 'w:got TERM' -- "$EC1" run --timeout 120 -- /bin/sh -c \
		'trap "echo got TERM; exit 5" TERM; echo ready; read x; echo "got $x"; echo "eof $(wc -c)";
		 while :; do sleep 0.1; done' 2>&1)
	check $name "exit 5" "$out"
}
t_run_bad_kernel_path_names_it() {
	"$EC1" run --kernel /no/such/vmlinux -- /bin/true 2>$T/err; rc=$?
	if [ $rc = 125 ] && grep -q 'kernel.path: /no/such/vmlinux: No such file or directory' $T/err
	then pass $name; else fail $name "rc $rc, stderr: $(cat $T/err)"; fi
}
t_run_boots_bzimage_through_64bit_protocol() {
	[ -f "$dir/bzImage" ] || { echo "SKIP: $name: no bzImage built"; return; }
	check $name "bz ok" "$(run --kernel "$dir/bzImage" -- /bin/echo bz ok)"
}
t_run_sigterm_to_ec1_reaches_process() {
	# SIGTERM to ec1 asks init to send SIGTERM to CMD, which ends with 128+15.
	"$EC1" run --timeout 120 -- /bin/sleep 1000 & pid=$!
	sleep 8
	kill -TERM $pid
	wait $pid
	check $name 143 $?
}
t_example_hello_runs() { check $name "Hello World" "$("$dir/hello")"; }
t_go_seed_example_prints_hello_world() {
	# The seed's example, in Go (go/pkg/libkrun/example), built with the ec1 tag.
	[ -x "$dir/go-example" ] || { echo "SKIP: $name: no Go build (scripts/go-test)"; return; }
	check $name "Hello World 0" "$("$dir/go-example") $?"
}
t_go_package_vm_tests() {
	# The Go package's VM tests (go/pkg/libkrun/ec1_test.go): Hello World, status, env,
	# workdir, stdin/stdout/stderr through io.Reader/Writer, volumes, a root directory, a
	# cancelled context.
	[ -x "$dir/go-libkrun-ec1.test" ] || { echo "SKIP: $name: no Go build (scripts/go-test)"; return; }
	rm -rf $T/goroot && mkdir -p $T/goroot && (cd $T/goroot && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	(cd $T && EC1_GO_VM=1 EC1_GO_ROOT=$T/goroot timeout -s KILL 600 "$dir/go-libkrun-ec1.test" \
		-test.v -test.run TestVM >$T/go.out 2>&1); rc=$?
	grep -E '^(---|ok|FAIL|panic)' $T/go.out | sed 's/^/      /'
	check $name "0 5 passed" "$rc $(grep -c -- '^--- PASS: TestVM' $T/go.out) passed"
}
t_run_kernel_panic_reported() {
	# An init that cannot run makes the kernel panic: ec1 must report it, not hang or crash.
	# panic=0 (the guest halts) rather than a reboot: a guest triple fault once stalled the
	# nested SVM of the rig for good; the panic text then arrives through --timeout's report.
	timeout -s KILL 120 "$EC1" run --timeout 25 --kernel "$EC1_KERNEL" \
		--cmdline 'rdinit=/nonexistent init=/nonexistent panic=0' -- /bin/true 2>$T/err; rc=$?
	if [ $rc = 125 ] && grep -q 'Kernel panic' $T/err; then pass $name
	else fail $name "rc $rc, stderr: $(head -c 400 $T/err)"; fi
}

t_run_vmm_threads_are_sandboxed() {
	# While a guest runs, every thread of ec1 but the caller's (the first) is under seccomp
	# filter mode (2): the vCPU, console output and virtio-fs threads at least (console input
	# ends at stdin's end).
	fsdir
	run --volume $T/fs:/mnt/s -- /bin/sh -c 'touch /mnt/s/up; sleep 4' & pid=$!
	i=0; while [ ! -e $T/fs/up ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
	ec1=
	for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = ec1 ] && ec1=${p#/proc/}; done
	modes=$(for t in /proc/$ec1/task/*; do awk '/^Seccomp:/ {print $2}' $t/status; done | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
	wait $pid; rc=$?
	n=$(echo "$modes" | tr ' ' '\n' | sed -n 's/^2://p')
	if [ $rc = 0 ] && echo "$modes" | grep -q '^0:1 ' && [ "${n:-0}" -ge 3 ]; then pass $name
	else fail $name "rc $rc, seccomp modes (mode:threads) $modes"; fi
}
t_run_vmm_memory_stays_small_with_devices() {
	# The VMM's own memory (RSS beyond the guest's RAM) with a share, a disk and two vCPUs,
	# each with threads of its own: on a host whose transparent huge pages are "always" (the
	# rig's Debian kernel) a thread stack or a sparse table given a whole 2 MiB page shows here
	# (6.4 MiB with the share alone before 2026-12-06; 2.6 after).
	fsdir
	dd if=/dev/zero of=$T/mem.img bs=1M count=16 2>/dev/null
	run --timing --net none --cpus 2 --volume $T/fs:/mnt/s --disk $T/mem.img,format=raw \
		-- /bin/sh -c 'ls /mnt/s >/dev/null; head -c 4096 /dev/vda >/dev/null' 2>$T/err
	rc=$?
	own=$(sed -n 's/.*VMM own \([0-9.]*\).*/\1/p' $T/err)
	echo "      (the VMM's own memory ${own:-?} MiB)"
	if [ $rc = 0 ] && [ -n "$own" ] && awk -v o="$own" 'BEGIN { exit !(o < 4.5) }'; then
		pass $name
	else fail $name "rc $rc, VMM own ${own:-?} MiB (at most 4.5): $(tail -c 800 $T/err)"; fi
	rm -f $T/mem.img
}

# Host directories through virtio-fs.
fsdir() { rm -rf $T/fs && mkdir -p $T/fs; }
t_run_and_exec_as_a_user_without_root() {
	# ec1 as an ordinary user (uid 4242) in /dev/kvm's group, with the threads' seccomp lists:
	# run, a volume (what the guest makes is the user's), a disk image, the NAT to a host
	# server, and start/exec/ls/stop under the default run directory, /tmp/ec1-UID. A run
	# directory someone else made there first is refused.
	[ -x "$dir/asuser" ] || { echo "SKIP: $name: no asuser built"; return; }
	[ -e /tmp/ec1-4242 ] && { echo "SKIP: $name: /tmp/ec1-4242 exists"; return; }
	kvm_gid=$(stat -c %g /dev/kvm)
	if [ -e /.rig-moved ]; then # the rig's /dev/kvm is root's alone: a kvm group of its own
		kvm_gid=4243 && chgrp $kvm_gid /dev/kvm && chmod 660 /dev/kvm
	elif [ $(( 0$(stat -c %a /dev/kvm) & 060 )) != 48 ]; then
		echo "SKIP: $name: /dev/kvm is not for its group"; return
	fi
	U=$(mktemp -d /tmp/ec1-user.XXXXXX) && chmod 755 $U
	cp -L "$EC1" "$dir/ec1-full" "$dir/libec1.so.0" "$dir/vmlinux" "$dir/rootfs.cpio" $U/
	[ -f "$dir/libslirp.so.0" ] && cp -L "$dir/libslirp.so.0" $U/
	mkdir -p $U/v $U/w && echo host >$U/v/f && echo page >$U/w/p
	dd if=/dev/zero of=$U/d.img bs=1M count=8 2>/dev/null
	chown -R 4242:4242 $U
	httpd -f -p 127.0.0.1:18097 -h $U/w & hp=$!
	cat >$U/t.sh <<'EOS'
cd "$1" || exit 1
r() { timeout -s KILL 150 ./ec1 run --timeout 120 "$@"; }
id -u
r -- id -u
r -V "$1/v:/mnt/v" -- sh -c 'cat /mnt/v/f; echo guest >/mnt/v/g'
stat -c %u v/g
r --disk d.img -- sh -c 'echo disk >/dev/vda; sync'; head -c 4 d.img; echo
r -- wget -q -O - http://10.0.2.2:18097/p
./ec1 start --name u1 --mem 256 && echo "$(./ec1 exec u1 -- echo in-vm) $(./ec1 ls | awk '$1 == "u1" {print $3}')"
./ec1 stop u1; echo "$? $(ls -A /tmp/ec1-4242)"
EOS
	out=$("$dir/asuser" 4242 4242 $kvm_gid env -i HOME=$U PATH=/bin:/usr/bin:/sbin:/usr/sbin \
		LD_LIBRARY_PATH=$U EC1_KERNEL=$U/vmlinux EC1_INITRAMFS=$U/rootfs.cpio EC1_SECCOMP=kill \
		sh $U/t.sh $U 2>&1 | tr '\n' '|')
	rm -rf /tmp/ec1-4242 && mkdir -m 700 /tmp/ec1-4242 && chown 4243 /tmp/ec1-4242
	"$dir/asuser" 4242 4242 $kvm_gid env -i LD_LIBRARY_PATH=$U $U/ec1 start --name u2 2>$T/err; st=$?
	kill $hp; wait $hp 2>/dev/null
	rm -rf /tmp/ec1-4242 $U
	check $name "4242|0|host|4242|disk|page|in-vm running|0 |125 1" \
		"$out$st $(grep -c 'not a directory of ours' $T/err)"
}
t_fs_guest_changes_seen_on_host() {
	fsdir
	echo data >$T/fs/old; echo gone >$T/fs/del; mkdir $T/fs/rmme; echo 0123456789 >$T/fs/trunc
	run --volume $T/fs:/mnt/s -- /bin/sh -c 'cd /mnt/s && echo created >new && cat old >copy &&
		mv old renamed && rm del && mkdir dir && rmdir rmme && ln -s renamed link &&
		chmod 600 new && truncate -s 4 trunc' 2>$T/err || { fail $name "guest: $(cat $T/err)"; return; }
	got="$(cat $T/fs/new)|$(cat $T/fs/copy)|$(cat $T/fs/renamed)|$(ls $T/fs/old $T/fs/del $T/fs/rmme 2>/dev/null)"
	got="$got|$([ -d $T/fs/dir ] && echo dir)|$(readlink $T/fs/link)|$(stat -c %a $T/fs/new)|$(cat $T/fs/trunc)"
	check $name "created|data|data||dir|renamed|600|0123" "$got"
}
t_fs_host_changes_seen_in_guest() {
	fsdir
	echo from-host >$T/fs/h; mkdir $T/fs/sub; ln -s h $T/fs/hl; chmod 640 $T/fs/h
	printf 12345678 >$T/fs/t; truncate -s 3 $T/fs/t
	# And while the guest runs: it waits for a file the host creates after it started.
	( sleep 3; echo live >$T/fs/go ) &
	got=$(run --volume $T/fs:/mnt/s -- /bin/sh -c 'cd /mnt/s; echo "$(cat h)|$(readlink hl)|$(stat -c %a h)|$(cat t)|$(ls -d sub)";
		i=0; while [ ! -e go ] && [ $i -lt 200 ]; do sleep 0.2; i=$((i+1)); done; cat go')
	wait
	check $name "from-host|h|640|123|sub
live" "$got"
}
# The guest keeps its page cache of a file it opens again only if the file did not change: a
# rewrite on the host of the same size, while the guest has the old text cached, shows at the
# next open. The file is older than two seconds, so the server trusts its times (and the cache
# would be kept had it not changed).
t_fs_host_rewrite_seen_at_next_open() {
	fsdir
	echo "old text" >$T/fs/f
	sleep 2.1
	( i=0; while [ ! -e $T/fs/read1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
	  echo "new text" >$T/fs/f; : >$T/fs/go ) &
	got=$(run --volume $T/fs:/mnt/s -- /bin/sh -c 'cd /mnt/s; a=$(cat f); a="$a|$(cat f)"; : >read1;
		i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo "$a|$(cat f)"')
	wait
	check $name "old text|old text|new text" "$got"
}
t_fs_256mib_file_roundtrip() {
	fsdir
	head -c 268435456 /dev/urandom >$T/fs/big
	want=$(sha256sum <$T/fs/big | cut -c1-64)
	got=$(run --mem 768 --volume $T/fs:/mnt/s -- /bin/sh -c 'cp /mnt/s/big /mnt/s/copy && sha256sum </mnt/s/big | cut -c1-64')
	check $name "$want|$want" "$got|$(sha256sum <$T/fs/copy | cut -c1-64)"
	rm -f $T/fs/big $T/fs/copy
}
t_fs_lists_10000_entries() {
	fsdir
	mkdir $T/fs/many
	(cd $T/fs/many && i=0 && while [ $i -lt 10000 ]; do : >f$i; i=$((i + 1)); done)
	check $name "10000 10000" "$(run --volume $T/fs:/mnt/s -- /bin/sh -c \
		'echo $(ls /mnt/s/many | wc -l) $(ls -l /mnt/s/many | grep -c "^-")')"
}
t_fs_read_only_volume_refuses_writes() {
	fsdir
	echo keep >$T/fs/f
	# The guest's read-only mount refuses; remounted read-write, the server still refuses.
	got=$(run --volume $T/fs:/mnt/s:ro -- /bin/sh -c 'for op in "echo x >/mnt/s/f" "touch /mnt/s/new" \
		"rm /mnt/s/f" "mkdir /mnt/s/d"; do sh -c "$op" 2>&1 | grep -c "Read-only file system"; done
		mount -o remount,rw /mnt/s && sh -c "echo x >/mnt/s/f" 2>&1 | grep -c "Read-only file system"' | tr '\n' ' ')
	check $name "1 1 1 1 1 |keep|" "$got|$(cat $T/fs/f)|$(ls $T/fs/new $T/fs/d 2>/dev/null)"
}
t_libkrun_volumes_mounted_from_the_staging_root() {
	# ec1 run --backend libkrun with volumes, on the fake libkrun 1.18, which boots what libkrun
	# would (FAKE_KRUN_VM: ec1's builtin engine with the root directory, the virtio-fs devices
	# and the program libkrun was given). ec1's init, from ec1's staging root, mounts the root and
	# the volumes (ro where asked), makes the root "/", runs the process with its argv, env (a
	# quote, which libkrun's command line could not carry) and workdir; its status comes back.
	lib=$dir/fake-krun/libkrun.so.1
	[ -f "$lib" ] && [ -x "$dir/ec1-krun" ] || { echo "SKIP: $name: no fake libkrun or ec1-krun"; return; }
	rm -rf $T/r $T/v1 $T/v2 && mkdir -p $T/r $T/v1 $T/v2
	(cd $T/r && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	echo in-root >$T/r/marker
	echo one >$T/v1/f
	echo two >$T/v2/g
	got=$(FAKE_KRUN_VM=$EC1 EC1_LIBKRUN_PATH=$lib EC1_KRUN_HELPER=$dir/ec1-krun TMPDIR=$T \
		timeout -s KILL 180 "$EC1" run --backend libkrun --root $T/r --volume $T/v1:/data \
		--volume $T/v2:/ro/two:ro --workdir /data --env 'Q=say "hi"' -- /bin/sh -c \
		'cat /marker f /ro/two/g; echo "$Q"; pwd; echo new >/data/new;
		(echo x >/ro/two/h) 2>/dev/null || echo refused; exit 3' 2>$T/err; echo "rc=$?")
	left=$(ls -d $T/ec1-krun-* 2>/dev/null)
	check $name "in-root one two say \"hi\" /data refused rc=3|new||" \
		"$(echo $got)|$(cat $T/v1/new 2>&1)|$(ls $T/v2/h 2>/dev/null)|$left"
	[ -s $T/err ] && grep -v '^$' $T/err | head -3 | sed "s/^/    $name: /"
}
t_libkrun_disks_as_libkrun_gives_them() {
	# ec1 run --backend libkrun --disk on the fake libkrun 1.19, which boots the disks as libkrun
	# would (in order; serials libkrun's, from the image's device and inode, not the block ids;
	# krun_add_disk3's sync mode; a qcow2 image's backing file opened): sync=none reaches the
	# guest as a write-through disk, a qcow2 overlay reads its backing file's data; without
	# ,backing that image never reaches libkrun.
	lib=$dir/fake-krun/libkrun.so.1
	[ -f "$lib" ] && [ -x "$dir/ec1-krun" ] || { echo "SKIP: $name: no fake libkrun or ec1-krun"; return; }
	rm -f $T/scratch.img $T/base.img $T/top.qcow2
	dd if=/dev/zero of=$T/scratch.img bs=1M count=0 seek=4 2>/dev/null
	printf in-base >$T/base.img && dd if=/dev/zero of=$T/base.img bs=1M count=0 seek=1 2>/dev/null
	qimg create -q -f qcow2 -b base.img -F raw $T/top.qcow2 || { fail $name "qemu-img create"; return; }
	krun() { FAKE_KRUN_VM=$EC1 EC1_LIBKRUN_PATH=$lib EC1_KRUN_HELPER=$dir/ec1-krun TMPDIR=$T \
		timeout -s KILL 180 "$EC1" run --backend libkrun "$@"; }
	got=$(krun --disk $T/scratch.img,id=scratch,sync=none --disk $T/top.qcow2,id=top,backing -- \
		/bin/sh -c 'for d in vda vdb; do echo $(cat /sys/block/$d/serial | cut -c1-20):$(cat /sys/block/$d/queue/write_cache); done
		head -c 7 /dev/vdb; echo; echo from-guest | dd of=/dev/vda conv=fsync 2>/dev/null' 2>$T/err)
	krun --disk $T/top.qcow2,id=top -- /bin/true 2>$T/err2; rc=$?
	serial() { echo "$(stat -c %d "$1")0$(stat -c %i "$1")" | cut -c1-20; } # st_rdev: 0 for files
	check $name "$(serial $T/scratch.img):write through $(serial $T/top.qcow2):write back in-base|from-guest|125 1" \
		"$(echo $got)|$(head -c 10 $T/scratch.img)|$rc $(grep -c 'names a backing file.*libkrun would open' $T/err2)"
	[ -s $T/err ] && grep -v '^$' $T/err | head -3 | sed "s/^/    $name: /"
	rm -f $T/scratch.img $T/base.img $T/top.qcow2
}
t_fs_share_ids_unless_guest_ids() {
	# ec1 runs as root here. By default what the guest makes belongs to the directory's owner,
	# chown to anyone else fails and setuid is dropped; with guest-ids the guest's ids stay.
	got=
	for opts in "" ":guest-ids"; do
		fsdir
		chown 4321:4321 $T/fs
		r=$(run --volume $T/fs:/mnt/s$opts -- /bin/sh -c 'cd /mnt/s && touch a &&
			chown 0:0 a 2>/dev/null; r=$?; chmod 4755 a; mkdir -m 2775 d; echo $r')
		got="$got[$r $(stat -c '%u:%g %a' $T/fs/a) $(stat -c '%a' $T/fs/d)]"
	done
	check $name "[1 4321:4321 755 2775][0 0:0 4755 2775]" "$got"
}
t_fs_parallel_writers_lose_nothing() {
	fsdir
	# Four processes on one vCPU (preempted mid-stream). With two vCPUs this load has crashed
	# the rig's own kernel (nested SVM under TCG: "stack guard page was hit" in L1).
	run --volume $T/fs:/mnt/s -- /bin/sh -c 'for w in 1 2 3 4; do
		(i=0; while [ $i -lt 300 ]; do echo "$w $i" >>/mnt/s/shared; echo $i >>/mnt/s/own$w; i=$((i+1)); done) &
		done; wait'
	got="$(wc -l <$T/fs/shared | tr -d ' ')|$(for w in 1 2 3 4; do grep -c "^$w " $T/fs/shared; done | tr '\n' ' ')"
	check $name "1200|300 300 300 300 |1200" "$got|$(cat $T/fs/own1 $T/fs/own2 $T/fs/own3 $T/fs/own4 | wc -l | tr -d ' ')"
}
t_fs_root_directory_runs_busybox_tree() {
	rm -rf $T/r && mkdir -p $T/r
	(cd $T/r && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	mkdir -p $T/r/etc && echo in-root >$T/r/etc/marker
	got=$(run --root $T/r -- /bin/sh -c 'cat /etc/marker; echo hi >/from-guest; ls /proc/self/exe >/dev/null && echo proc')
	# ec1's init is not written into the root directory.
	check $name "in-root proc|hi|" "$(echo $got)|$(cat $T/r/from-guest)|$(ls -a $T/r | grep '^\.ec1')"
}
t_fs_debian_root_runs_bash() {
	# A real distribution as the root: `make debian-root` (debootstrap --variant=minbase bookworm).
	deb=${EC1_TEST_DEBIAN_ROOT:-}
	[ -n "$deb" ] && [ -x "$deb/bin/bash" ] || { echo "SKIP: $name: no Debian tree (make debian-root)"; return; }
	got=$(run --root "$deb" -- /bin/bash -c '. /etc/os-release && echo "$ID $VERSION_CODENAME $BASH_VERSION"')
	case $got in
	"debian bookworm 5."*) pass $name ;;
	*) fail $name "got [$got]" ;;
	esac
}
t_fs_share_by_tag_mounted_by_guest() {
	fsdir
	echo tagged >$T/fs/f
	check $name tagged "$(run --share data:$T/fs -- /bin/sh -c 'mkdir -p /m && mount -t virtiofs data /m && cat /m/f')"
}
t_fs_no_escape_through_links_or_renames() {
	rm -rf $T/esc && mkdir -p $T/esc/share $T/esc/outside
	echo secret >$T/esc/outside/secret
	ln -s ../outside/secret $T/esc/share/rel; ln -s $T/esc/outside $T/esc/share/abs; ln -s / $T/esc/share/root
	out=$(run --volume $T/esc/share:/mnt/s -- /bin/sh -c "
		cat /mnt/s/rel /mnt/s/abs/secret /mnt/s/root$T/esc/outside/secret /mnt/s/../outside/secret
		ln -s ../../etc /mnt/s/etc2; ln -s / /mnt/s/slash; ls /mnt/s/etc2/ /mnt/s/slash/
		ln /mnt/s/../../etc/passwd /mnt/s/pw
		echo pwned >/mnt/s/rel; echo pwned >/mnt/s/abs/secret
		mv /mnt/s/root /mnt/s/../moved
		echo done" 2>/dev/null | grep -e secret -e done)
	got="$out|$(cat $T/esc/outside/secret)|$(ls $T/esc/outside | tr '\n' ' ')|$(readlink $T/esc/share/etc2)|$(ls $T/esc/share/pw 2>/dev/null)"
	check $name "done|secret|secret |../../etc|" "$got"
}

# Disk images through virtio-blk.
mkext4() { # IMAGE MIB [DIR]: an ext4 file system, filled from DIR when given
	mke2fs=$dir/mke2fs; [ -x "$mke2fs" ] || mke2fs=mke2fs
	rm -f "$1"; dd if=/dev/zero of="$1" bs=1M count=0 seek="$2" 2>/dev/null
	"$mke2fs" -q -F -t ext4 ${3:+-d "$3"} "$1" >$T/mkfs 2>&1 || { cat $T/mkfs; return 1; }
}
blocks() { stat -c %b "$1"; }
t_blk_256mib_copied_disk_to_disk_in_guest() {
	# The guest reads one disk whole and writes it to another: 256 MiB each way, no stream.
	head -c 268435456 /dev/urandom >$T/a.img
	dd if=/dev/zero of=$T/b.img bs=1M count=0 seek=256 2>/dev/null
	got=$(run --mem 256 --disk $T/a.img --disk $T/b.img -- /bin/sh -c \
		'dd if=/dev/vda of=/dev/vdb bs=1M 2>/dev/null && sync && sha256sum </dev/vdb | cut -c1-64')
	want=$(sha256sum <$T/a.img | cut -c1-64)
	check $name "$want|$want" "$got|$(sha256sum <$T/b.img | cut -c1-64)"
	rm -f $T/a.img $T/b.img
}
t_blk_serial_size_and_no_io_scheduler() {
	# The serial is the block id; the guest kernel has no I/O scheduler (README: Disks).
	dd if=/dev/zero of=$T/d.img bs=1M count=0 seek=8 2>/dev/null
	check $name "my-disk.1 16384 0 [none]" "$(run --disk $T/d.img,id=my-disk.1 -- /bin/sh -c \
		'cd /sys/block/vda && read s <queue/scheduler && echo "$(cat serial) $(cat size) $(cat ro) $s"')"
}
t_blk_requests_cost_no_register_reads() {
	# The guest reads the devices' registers from a read-only page (README: virtio-mmio): 2,000
	# requests, each an interrupt whose InterruptStatus read used to exit, cost the disk a handful
	# of register exits; the kicks still reach its thread inside KVM (0 notifications), the
	# acknowledgements still wait in the ring. EC1_REGISTERS=exit puts the exits back.
	dd if=/dev/zero of=$T/d.img bs=1M count=0 seek=8 2>/dev/null
	reads='dd if=/dev/vda of=/dev/null bs=4k count=2000 iflag=direct 2>/dev/null'
	run --timing --disk $T/d.img -- /bin/sh -c "$reads" 2>$T/page; r1=$?
	EC1_REGISTERS=exit run --timing --disk $T/d.img -- /bin/sh -c "$reads" 2>$T/exit; r2=$?
	counts() { sed -n 's/^ec1 virtio-blk: \([0-9]*\) register exits (\([0-9]*\) notifications), \([0-9]*\) interrupts.*/\1 \2 \3/p' "$1"; }
	set -- $(counts $T/page) $(counts $T/exit)
	if [ "$r1 $r2" = "0 0" ] && [ "${2:-x}" = 0 ] && [ "${3:-0}" -ge 2000 ] && [ "$1" -lt 100 ] &&
		[ "${4:-0}" -ge 2000 ]; then pass $name
	else fail $name "exit $r1 $r2; exits, notifications, interrupts: [$*] $(head -c 300 $T/page)"; fi
}
t_blk_read_only_disk_refuses_writes() {
	head -c 1048576 /dev/urandom >$T/ro.img; want=$(sha256sum <$T/ro.img)
	got=$(run --disk $T/ro.img,ro -- /bin/sh -c 'cat /sys/block/vda/ro;
		dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/dev/null && echo wrote;
		blkdiscard /dev/vda 2>/dev/null && echo discarded; head -c 4 /dev/vda | wc -c')
	check $name "1 4|$want" "$(echo $got)|$(sha256sum <$T/ro.img)"
}
t_blk_discard_and_fstrim_leave_holes() {
	# blkdiscard on a whole raw disk, fstrim on an ext4 one after a file is deleted: the host
	# sees the blocks freed.
	head -c 67108864 /dev/urandom >$T/raw.img
	mkext4 $T/fs.img 128 || { fail $name "mke2fs"; return; }
	before=$(blocks $T/fs.img)
	run --disk $T/raw.img --disk $T/fs.img,mount=/data -- /bin/sh -c \
		'blkdiscard /dev/vda && dd if=/dev/urandom of=/data/big bs=1M count=48 2>/dev/null &&
		sync && echo filled $(stat -c %b /data/big) && rm /data/big && sync && fstrim /data' \
		>$T/out 2>$T/err
	raw=$(blocks $T/raw.img) after=$(blocks $T/fs.img)
	echo "      (raw: $raw blocks left of 131072; ext4: $before blocks, $after after fstrim; $(cat $T/out))"
	if [ "$raw" -lt 1024 ] && grep -q filled $T/out && [ "$after" -lt $((before + 8192)) ]; then pass $name
	else fail $name "raw $raw blocks, ext4 $before then $after; $(cat $T/out $T/err)"; fi
}
t_blk_held_interrupts_lose_no_request() {
	# Eight readers and eight writers at once, the disk thread holding its interrupt after every
	# batch for more requests (EC1_BLK_HOLD=200; README: Disks): every request is answered, with
	# the right data, and held ones carried more requests than one.
	head -c 33554432 /dev/urandom >$T/h.img
	dd if=/dev/zero of=$T/w.img bs=1M count=0 seek=32 2>/dev/null
	EC1_BLK_HOLD=200 run --timing --disk $T/h.img --disk $T/w.img -- /bin/sh -c '
		for i in 0 1 2 3 4 5 6 7; do
			(dd if=/dev/vda bs=4k skip=$((i * 1024)) count=1024 iflag=direct 2>/dev/null |
				sha256sum | cut -c1-64 >/tmp/r$i) &
			dd if=/dev/vda of=/dev/vdb bs=4k skip=$((i * 1024)) seek=$((i * 1024)) count=1024 \
				iflag=direct oflag=direct conv=notrunc 2>/dev/null &
		done
		wait; cat /tmp/r0 /tmp/r1 /tmp/r2 /tmp/r3 /tmp/r4 /tmp/r5 /tmp/r6 /tmp/r7' >$T/held 2>$T/held.err
	want=$(for i in 0 1 2 3 4 5 6 7; do
		dd if=$T/h.img bs=4k skip=$((i * 1024)) count=1024 2>/dev/null | sha256sum | cut -c1-64
	done | tr '\n' ' ')
	more=$(sed -n 's/^ec1 virtio-blk .*batches, \([0-9]*\) requests more in held ones.*/\1/p' $T/held.err | head -n 1)
	echo "      (requests answered in held batches beyond their first: ${more:-none})"
	if [ "$(tr '\n' ' ' <$T/held)" = "$want" ] && cmp -s $T/h.img $T/w.img && [ "${more:-0}" -gt 0 ]; then
		pass $name
	else fail $name "reads [$(tr '\n' ' ' <$T/held)] want [$want]; copy $(cmp $T/h.img $T/w.img 2>&1 | head -c 100); held ${more:-none}; $(tail -c 400 $T/held.err)"; fi
	rm -f $T/h.img $T/w.img
}
t_blk_synced_data_survives_kill_9() {
	# What the guest wrote and synced is in the image once ec1 is killed with SIGKILL.
	dd if=/dev/zero of=$T/k.img bs=1M count=0 seek=16 2>/dev/null
	run --disk $T/k.img -- /bin/sh -c 'echo survivor-data | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null;
		echo synced; sleep 1000' >$T/out 2>&1 & bg=$!
	i=0; while ! grep -q synced $T/out && [ $i -lt 1200 ] && kill -0 $bg 2>/dev/null; do sleep 0.1; i=$((i+1)); done
	kill -9 $(ec1_pid) 2>/dev/null; wait $bg
	check $name "synced|survivor-data" "$(head -n 1 $T/out)|$(head -c 13 $T/k.img)"
}
t_blk_direct_io_and_sync_none() {
	# ,direct: the VMM holds the image O_DIRECT (its descriptor's flags say so; the other disk's
	# do not) and 8 MiB go through whole both ways; sync=none: the guest sees that disk write-
	# through and sends it no flush, the other one write-back and flushed. The rig's tmpfs takes
	# no O_DIRECT: there the direct disk is a RAM block device (brd, loaded by the rig).
	rm -f $T/probe
	if dd if=/dev/zero of=$T/probe bs=4096 count=1 oflag=direct 2>/dev/null; then
		target=$T/direct.img; dd if=/dev/zero of=$target bs=1M count=0 seek=16 2>/dev/null
	elif [ -b /dev/ram0 ]; then target=/dev/ram0
	else rm -f $T/probe; echo "SKIP: $name: nothing here takes O_DIRECT"; return; fi
	rm -f $T/probe
	head -c 8388608 /dev/urandom >$T/pat.img
	want=$(sha256sum <$T/pat.img | cut -c1-64)
	run --timing --disk $T/pat.img,id=pat,sync=none --disk $target,id=direct,direct -- /bin/sh -c '
		dd if=/dev/vda of=/dev/vdb bs=65536 conv=fsync 2>/dev/null
		echo 3 >/proc/sys/vm/drop_caches
		echo "$(head -c 8388608 /dev/vdb | sha256sum | cut -c1-64)"
		echo "$(cat /sys/block/vda/queue/write_cache)|$(cat /sys/block/vdb/queue/write_cache)"
		echo end | dd of=/dev/vda bs=512 seek=16383 conv=sync,fsync 2>/dev/null
		echo copied; sleep 5' >$T/out 2>$T/err & bg=$!
	i=0; while ! grep -qs copied $T/out && [ $i -lt 1200 ] && kill -0 $bg 2>/dev/null; do sleep 0.1; i=$((i+1)); done
	pid=$(ec1_pid) flags="" rt=$(readlink -f $target) rp=$(readlink -f $T/pat.img)
	for f in /proc/$pid/fd/*; do
		case $(readlink $f) in
		"$rt") flags="$flags direct:$(( $(awk '/^flags/ {print $2}' /proc/$pid/fdinfo/${f##*/}) & 040000 ))" ;;
		"$rp") flags="$flags pat:$(( $(awk '/^flags/ {print $2}' /proc/$pid/fdinfo/${f##*/}) & 040000 ))" ;;
		esac
	done
	wait $bg
	# The flushes each disk got (--timing): the sync=none one none, though the guest synced both.
	flushes() { sed -n "s|^ec1 virtio-blk $1: .* \([0-9]*\) flushes.*|\1|p" $T/err; }
	back=$(head -c 8388608 $target | sha256sum | cut -c1-64)
	got="$(head -n 2 $T/out | tr '\n' '|')$back|$(echo $flags | tr ' ' '\n' | sort | tr '\n' ' ')"
	got="$got|$(flushes $T/pat.img) $([ "$(flushes $target)" -gt 0 ] 2>/dev/null && echo flushed)"
	# Where the test's own directory takes no O_DIRECT, an image there is refused, saying why.
	if [ "$target" = /dev/ram0 ]; then
		run --disk $T/pat.img,id=here,direct -- /bin/true 2>$T/err2
		got="$got|$? $(grep -c 'disk here: .*direct I/O (O_DIRECT): its file system does not take it' $T/err2)"
	else got="$got|125 1"; fi
	check $name "$want|write through|write back|$want|direct:16384 pat:0 |0 flushed|125 1" "$got"
	rm -f $T/pat.img $T/direct.img
}
t_blk_four_disks_at_once() {
	for i in 1 2 3 4; do dd if=/dev/zero of=$T/d$i.img bs=1M count=0 seek=$((i * 4)) 2>/dev/null; done
	run --disk $T/d1.img,id=one --disk $T/d2.img,id=two --disk $T/d3.img,id=three \
		--disk $T/d4.img,id=four -- /bin/sh -c 'for d in /sys/block/vd*; do
		echo "$(cat $d/serial)" | dd of=/dev/${d##*/} 2>/dev/null; done' 2>$T/err
	# No sync in the guest: init's, at the end, puts what its page cache held on the disks.
	got=""; for i in 1 2 3 4; do got="$got $(head -n 1 $T/d$i.img | tr -d '\0')"; done
	check $name " one two three four" "$got"
}
t_blk_root_disk_runs_busybox_tree() {
	rm -rf $T/r && mkdir -p $T/r && (cd $T/r && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	echo on-disk >$T/r/marker
	mkext4 $T/root.img 64 $T/r || { fail $name "mke2fs"; return; }
	got=$(run --root-disk $T/root.img -- /bin/sh -c 'cat /marker; echo new >/made-in-guest;
		awk "\$2 == \"/\" {print \$3}" /proc/mounts | tail -n 1; ls /proc/self/exe >/dev/null && echo proc')
	again=$(run --root-disk $T/root.img,ro -- /bin/sh -c 'cat /made-in-guest; touch /x 2>/dev/null || echo ro')
	check $name "on-disk ext4 proc|new ro" "$(echo $got)|$(echo $again)"
}
le32() { n=$1; for i in 0 1 2 3; do printf "\\$(printf %o $((n & 255)))"; n=$((n >> 8)); done; }
t_blk_partitions_mounted_and_root() {
	# An image with an MBR partition table, as cloud images have: partition 1 a busybox root,
	# partition 2 a data file system. part=2 mounts the second, --root-disk ...,part=1 boots
	# from the first, part=3 (none) exits 125 naming the partition.
	rm -rf $T/r $T/two && mkdir -p $T/r $T/two && (cd $T/r && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	echo on-part1 >$T/r/marker && echo second >$T/two/two
	mkext4 $T/p1.img 64 $T/r && mkext4 $T/p2.img 8 $T/two || { fail $name "mke2fs"; return; }
	rm -f $T/p.img && dd if=/dev/zero of=$T/p.img bs=1M count=0 seek=74 2>/dev/null
	dd if=$T/p1.img of=$T/p.img bs=1M seek=1 conv=notrunc 2>/dev/null
	dd if=$T/p2.img of=$T/p.img bs=1M seek=65 conv=notrunc 2>/dev/null
	{ printf '\000\000\000\000\203\000\000\000'; le32 2048; le32 131072
	  printf '\000\000\000\000\203\000\000\000'; le32 133120; le32 16384; } |
		dd of=$T/p.img bs=1 seek=446 conv=notrunc 2>/dev/null
	printf '\125\252' | dd of=$T/p.img bs=1 seek=510 conv=notrunc 2>/dev/null
	a=$(run --disk $T/p.img,mount=/mnt/p,part=2 -- cat /mnt/p/two 2>&1)
	b=$(run --root-disk $T/p.img,part=1 -- cat /marker 2>&1)
	run --disk $T/p.img,id=cloud,mount=/mnt/p,part=3 -- /bin/true 2>$T/err; rc=$?
	c="$rc $(grep -o 'disk "cloud" (vda3): partition 3: No such file or directory' $T/err)"
	rm -f $T/p.img $T/p1.img $T/p2.img
	check $name 'second|on-part1|125 disk "cloud" (vda3): partition 3: No such file or directory' "$a|$b|$c"
}
t_blk_debian_root_disk_runs_bash() {
	deb=${EC1_TEST_DEBIAN_ROOT:-}
	[ -n "$deb" ] && [ -x "$deb/bin/bash" ] || { echo "SKIP: $name: no Debian tree (make debian-root)"; return; }
	mkext4 $T/deb.img 1024 "$deb" || { fail $name "mke2fs"; return; }
	got=$(run --root-disk $T/deb.img,ro -- /bin/bash -c '. /etc/os-release && echo "$ID $VERSION_CODENAME"')
	rm -f $T/deb.img
	check $name "debian bookworm" "$got"
}
t_blk_mounted_disk_keeps_files_across_runs() {
	mkext4 $T/data.img 32 || { fail $name "mke2fs"; return; }
	run --disk $T/data.img,id=data,mount=/srv/data,fstype=ext4 -- /bin/sh -c 'echo kept >/srv/data/f' 2>$T/err
	check $name "kept" "$(run --disk $T/data.img,mount=/mnt/d -- cat /mnt/d/f 2>&1)"
}
qimg() { q=$dir/qemu-img; [ -x "$q" ] || q=qemu-img; "$q" "$@"; }
t_blk_qcow2_written_in_guest_passes_qemu_img_check() {
	# 32 MiB copied into a fresh qcow2 image, 4 MiB of it discarded: qemu-img finds the image
	# clean and reads what the guest read.
	head -c 33554432 /dev/urandom >$T/src.img
	qimg create -q -f qcow2 $T/q.qcow2 64M || { fail $name "qemu-img create"; return; }
	got=$(run --disk $T/src.img --disk $T/q.qcow2 -- /bin/sh -c 'dd if=/dev/vda of=/dev/vdb bs=1M 2>/dev/null &&
		sync && blkdiscard -o 8388608 -l 4194304 /dev/vdb && sha256sum </dev/vdb | cut -c1-64' 2>$T/err)
	qimg check -q $T/q.qcow2 >$T/check 2>&1; rc=$?
	qimg convert -f qcow2 -O raw $T/q.qcow2 $T/q.raw
	check $name "0|$got" "$rc|$(sha256sum <$T/q.raw | cut -c1-64)"
	[ $rc = 0 ] || cat $T/check $T/err
	rm -f $T/src.img $T/q.qcow2 $T/q.raw
}
t_blk_qcow2_file_system_churn_checks_clean() {
	# ext4 on a qcow2 image of 4 KiB clusters, churned by the guest in three rounds (files of
	# random sizes written and synced, a third of them deleted, fstrim: their clusters freed
	# and taken again by the next round's), a manifest of every file's sha256 kept on the disk.
	# A second run reads every file back against it; qemu-img check finds the image clean (no
	# leak either: nothing was killed) and e2fsck the file system in it.
	mkext4 $T/fs.raw 64 || { fail $name "mke2fs"; return; }
	qimg convert -f raw -O qcow2 -o cluster_size=4096 $T/fs.raw $T/churn.qcow2 ||
		{ fail $name "qemu-img convert"; return; }
	run --disk $T/churn.qcow2,mount=/d -- /bin/sh -c 'set -e; for r in 1 2 3; do
		i=0; while [ $i -lt 30 ]; do
			head -c $(( (r * 7919 + i * 104729) % 204800 + 1 )) /dev/urandom >/d/r$r.$i
			i=$((i + 1)); done
		sync; i=0; while [ $i -lt 30 ]; do rm /d/r$r.$i; i=$((i + 3)); done
		sync; fstrim /d; done
		cd /d && sha256sum r* >manifest && echo $(ls r* | wc -l) files' >$T/out 2>$T/err
	got=$(run --disk $T/churn.qcow2,ro,mount=/d -- /bin/sh -c \
		'cd /d && sha256sum -c manifest >/dev/null && echo read back' 2>&1)
	qimg check -q $T/churn.qcow2 >$T/check 2>&1; rc=$?
	qimg convert -f qcow2 -O raw $T/churn.qcow2 $T/fs.raw
	fsck=$dir/e2fsck; [ -x "$fsck" ] || fsck=e2fsck
	"$fsck" -fn $T/fs.raw >$T/fsck 2>&1; frc=$?
	check $name "60 files|read back|0|0" "$(cat $T/out)|$got|$rc|$frc"
	[ $rc = 0 ] && [ $frc = 0 ] || cat $T/err $T/check $T/fsck | head -20
	rm -f $T/fs.raw $T/churn.qcow2
}
t_blk_qcow2_killed_mid_write_has_at_most_leaks() {
	head -c 67108864 /dev/urandom >$T/src.img
	qimg create -q -f qcow2 -o cluster_size=4096 $T/k.qcow2 64M || { fail $name "qemu-img create"; return; }
	run --disk $T/src.img --disk $T/k.qcow2 -- /bin/sh -c 'echo go; while :; do
		dd if=/dev/vda of=/dev/vdb bs=64k 2>/dev/null; blkdiscard /dev/vdb; done' >$T/out 2>&1 & bg=$!
	i=0; while ! grep -q go $T/out && [ $i -lt 1200 ] && kill -0 $bg 2>/dev/null; do sleep 0.1; i=$((i+1)); done
	sleep 4; kill -9 $(ec1_pid) 2>/dev/null; wait $bg
	qimg check $T/k.qcow2 >$T/check 2>&1; rc=$?
	# 0: clean; 3: leaked clusters only. 2 would be corruption.
	echo "      (qemu-img check: exit $rc: $(tail -n 3 $T/check | tr '\n' ' '))"
	case $rc in 0|3) pass $name ;; *) fail $name "qemu-img check exit $rc: $(head -c 600 $T/check)" ;; esac
	rm -f $T/src.img $T/k.qcow2
}
t_blk_qcow2_root_disk_over_backing_file() {
	rm -rf $T/r && mkdir -p $T/r && (cd $T/r && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	echo in-base >$T/r/marker
	mkext4 $T/base.img 64 $T/r || { fail $name "mke2fs"; return; }
	base_sum=$(sha256sum <$T/base.img)
	qimg create -q -f qcow2 -b base.img -F raw $T/top.qcow2 || { fail $name "qemu-img create"; return; }
	got=$(run --root-disk $T/top.qcow2,backing -- /bin/sh -c 'cat /marker; echo changed >/marker; cat /marker')
	again=$(run --root-disk $T/top.qcow2,backing,ro -- cat /marker)
	run --root-disk $T/top.qcow2 -- /bin/true 2>$T/err; rc=$?
	check $name "in-base changed|changed|$base_sum|125 1" \
		"$(echo $got)|$again|$(sha256sum <$T/base.img)|$rc $(grep -c 'backing file' $T/err)"
	rm -f $T/base.img $T/top.qcow2
}
t_blk_net_devices_work_again_after_the_driver_is_rebound() {
	# The guest's own drivers let go of the disk and of eth0 (unbind: the device is reset) and
	# take them again (bind: a second set-up of features and queues on the same device): the
	# disk reads the same, the network fetches a page again.
	head -c 8388608 /dev/urandom >$T/rb.img
	mkdir -p $T/www && echo "hello again" >$T/www/rb.html
	httpd -f -p 127.0.0.1:18098 -h $T/www & hp=$!
	got=$(run --disk $T/rb.img -- /bin/sh -c 'd=/sys/bus/virtio/drivers
		b=$(basename $(readlink -f /sys/block/vda/device)); n=$(basename $(readlink -f /sys/class/net/eth0/device))
		sha256sum </dev/vda | cut -c1-64
		echo $b >$d/virtio_blk/unbind; [ -e /dev/vda ] && echo still there
		echo $b >$d/virtio_blk/bind; sha256sum </dev/vda | cut -c1-64
		echo $n >$d/virtio_net/unbind; ip link show eth0 2>/dev/null && echo still there
		echo $n >$d/virtio_net/bind && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 &&
		ip route add default via 10.0.2.2 && wget -q -O - http://10.0.2.2:18098/rb.html' 2>$T/err)
	rc=$?
	kill $hp; wait $hp 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	want=$(sha256sum <$T/rb.img | cut -c1-64)
	check $name "0|$want $want hello again" "$rc|$(echo $got)"
	rm -f $T/rb.img
}
t_blk_bad_disks_exit_125_naming_them() {
	out=""
	run --disk /no/such.img -- /bin/true 2>$T/e1; out="$out $?"
	printf 'QFI\373' >$T/q.img; dd if=/dev/zero of=$T/q.img bs=1M count=0 seek=1 2>/dev/null
	run --disk $T/q.img,format=raw -- /bin/true 2>$T/e2; out="$out $?"
	run --disk $T/q.img,bogus -- /bin/true 2>$T/e3; out="$out $?"
	run --disk $T -- /bin/true 2>$T/e4; out="$out $?"
	# An image in use by a running VM.
	dd if=/dev/zero of=$T/busy.img bs=1M count=0 seek=1 2>/dev/null
	run --disk $T/busy.img -- /bin/sh -c 'echo up; sleep 1000' >$T/busy 2>&1 & bg=$!
	i=0; while ! grep -q up $T/busy && [ $i -lt 1200 ] && kill -0 $bg 2>/dev/null; do sleep 0.1; i=$((i+1)); done
	run --disk $T/busy.img,ro -- /bin/true 2>$T/e5; out="$out $?"
	kill -9 $(ec1_pid) 2>/dev/null; wait $bg
	# A bad interrupt hold setting (README: Disks).
	EC1_BLK_HOLD=5ms run --disk $T/busy.img -- /bin/true 2>$T/e6; out="$out $?"
	msgs="$(grep -c 'no/such.img' $T/e1)$(grep -c 'qcow2' $T/e2)$(grep -c bogus $T/e3)$(grep -c 'directory' $T/e4)$(grep -c 'in use' $T/e5)$(grep -c 'EC1_BLK_HOLD "5ms"' $T/e6)"
	check $name " 125 125 125 125 125 125|111111" "$out|$msgs"
	[ "$msgs" = 111111 ] || cat $T/e1 $T/e2 $T/e3 $T/e4 $T/e5 $T/e6
}

# Networking through virtio-net: a stream peer (tests/vm/netpeer.c) on --net fd:3.
t_net_stream_peer_answers_ping() {
	# init asks the peer's DHCP server (tests/fake/tinynet.c) for eth0's address, the default
	# route and DNS; the peer answers ARP and ICMP echo: three pings go out and come back
	# through the device and the stream backend.
	timeout -s KILL 180 "$dir/netpeer" "$EC1" run --timeout 120 --net fd:3 --mac 02:ec:01:00:00:07 \
		-- /bin/sh -c 'ping -c 3 -W 10 10.0.2.2 | grep -o "3 packets received";
		cat /etc/resolv.conf; cat /sys/class/net/eth0/address; ifconfig eth0 | grep -o "10.0.2.15"' \
		>$T/out 2>$T/err
	rc=$?
	got="$rc|$(tr '\n' ' ' <$T/out)|$(grep -o '1 dhcp acks' $T/err)"
	echo "      ($(grep netpeer: $T/err))"
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|3 packets received nameserver 10.0.2.2 02:ec:01:00:00:07 10.0.2.15 |1 dhcp acks" "$got"
}
t_net_dhcp_lease_renewed_or_taken_again() {
	# A lease that ends is kept (init's ec1-dhcp process): with 6 s leases, a guest that lives
	# 13 s renews at half of each (REQUESTs from its address, which the peer counts and ACKs:
	# one OFFER only); when every renewal gets a NAK it drops the address, asks again from the
	# start and gets it back, saying so. Either way eth0 has its address and answers at the end.
	for mode in renew nak; do
		timeout -s KILL 180 "$dir/netpeer" --lease 6 $([ $mode = nak ] && echo --nak-renewals) \
			"$EC1" run --timeout 120 --net fd:3 -- /bin/sh -c 'sleep 13
			ping -c 2 -W 5 10.0.2.2 >/dev/null && echo pinged; ifconfig eth0 | grep -o 10.0.2.15' \
			>$T/out.$mode 2>$T/err.$mode
		echo "      ($mode: $(grep netpeer: $T/err.$mode))"
	done
	count() { sed -n "s/^netpeer: .* \([0-9]*\) $1.*/\1/p" $T/err.$2; }
	got="$(tr '\n' ' ' <$T/out.renew)$(count 'dhcp offers' renew) $([ "$(count 'dhcp renewals' renew)" -ge 3 ] && echo renewed)"
	got="$got|$(tr '\n' ' ' <$T/out.nak)$([ "$(count 'dhcp offers' nak)" -ge 3 ] && echo offered-again)"
	got="$got $(grep -c 'eth0: the lease on 10.0.2.15 was refused (NAK); asking again' $T/err.nak | sed 's/^[1-9][0-9]*$/said/')"
	got="$got $(grep -c 'eth0: leased 10.0.2.15' $T/err.nak | sed 's/^[1-9][0-9]*$/said/')"
	check $name "pinged 10.0.2.15 1 renewed|pinged 10.0.2.15 offered-again said said" "$got"
}
t_net_tap_in_own_netns_serves_http() {
	# In a network namespace of its own: a TAP interface as 10.0.2.2/24 with busybox httpd and
	# udhcpd on it; the guest takes its address from udhcpd, fetches a page through virtio-net
	# and the TAP, and pings the host side. A second run with --ip needs no DHCP server.
	mkdir -p $T/www && echo "hello from the host" >$T/www/index.html
	printf '%s\n' "start 10.0.2.15" "end 10.0.2.15" "interface ec1tap0" "lease_file $T/leases" \
		"pidfile $T/udhcpd.pid" "opt subnet 255.255.255.0" "opt router 10.0.2.2" \
		"opt dns 10.0.2.2" >$T/udhcpd.conf
	: >$T/leases
	unshare -n sh -c "ip link set lo up && tunctl -t ec1tap0 >/dev/null &&
		ip addr add 10.0.2.2/24 dev ec1tap0 && ip link set ec1tap0 up &&
		{ httpd -f -p 10.0.2.2:8080 -h $T/www & echo \$! >$T/httpd.pid; } &&
		{ udhcpd -f $T/udhcpd.conf >$T/udhcpd.log 2>&1 & echo \$! >$T/udhcpd.pid2; } &&
		timeout -s KILL 180 $EC1 run --timeout 120 --net tap:ec1tap0 -- /bin/sh -c \
		'ifconfig eth0 | grep -o \"10.0.2.15 \"; cat /etc/resolv.conf;
		wget -q -O - http://10.0.2.2:8080/index.html; ping -c 2 -W 10 10.0.2.2 |
		grep -o \"2 packets received\"' && kill \$(cat $T/udhcpd.pid2) &&
		timeout -s KILL 180 $EC1 run --timeout 120 --net tap:ec1tap0 --ip 10.0.2.16/24 -- \
		/bin/sh -c 'wget -q -O - http://10.0.2.2:8080/index.html'; rc=\$?;
		kill \$(cat $T/httpd.pid); exit \$rc" >$T/out 2>$T/err
	rc=$?
	[ $rc = 0 ] || { head -c 2000 $T/err; cat $T/udhcpd.log; }
	check $name "0|10.0.2.15  nameserver 10.0.2.2 hello from the host 2 packets received hello from the host " \
		"$rc|$(tr '\n' ' ' <$T/out)"
	rm -rf $T/www
}
t_net_tap_offloads_bulk_sha256() {
	# Over a TAP in a namespace of its own, 64 MiB each way in one VM: from the guest to a
	# host-side receiver, then from a host-side sender to the guest; equal sha256 both ways, the
	# guest left TCP segmentation to the host (the TSO frames --timing counts) and took whole
	# TCP segments from it (the GSO frames received).
	nat_tools
	n=67108864
	unshare -n sh -c "ip link set lo up && tunctl -t ec1tap1 >/dev/null &&
		ip addr add 10.0.2.2/24 dev ec1tap1 && ip link set ec1tap1 up &&
		{ $dir/nettool --recv 10.0.2.2 9000 | sha256sum >$T/got & } &&
		{ $dir/nettool --send 10.0.2.15 9001 $n >$T/send.out 2>&1 & } &&
		timeout -s KILL 300 $EC1 run --timeout 240 --timing --net tap:ec1tap1 --ip 10.0.2.15/24 \
			-V $T/nt:/mnt/nt:ro -- /bin/sh -c '/mnt/nt/nettool --send 10.0.2.2 9000 $n &&
			/mnt/nt/nettool --recv 10.0.2.15 9001 | sha256sum' >$T/back 2>$T/timing; rc=\$?;
		wait; exit \$rc" >$T/out 2>$T/err
	rc=$?
	want=$("$dir/nettool" --gen $n | sha256sum)
	tso=$(grep -o 'offloads: [1-9][0-9]* frames sent for the host to segment' $T/timing | cut -d' ' -f1)
	gso=$(grep -o 'offloads: [1-9][0-9]* frames received whole' $T/timing | cut -d' ' -f1)
	echo "      ($(grep -h 'offloads:' $T/timing | sed 's/^ec1 virtio-net: offloads: //' | tr '\n' ';'))"
	[ $rc = 0 ] || { head -c 2000 $T/err; grep -v '^ec1 timing' $T/timing | head -c 1000; cat $T/send.out; }
	check $name "0|$want|$want|offloads:|offloads:" "$rc|$(cat $T/got)|$(cat $T/back)|$tso|$gso"
}
t_net_flooding_guest_leaves_vmm_bounded() {
	# 50,000 frames of 1,514 bytes (75 MB) from the guest, UDP to a static ARP entry, to a peer
	# that reads nothing: the VMM keeps a bounded queue, drops the rest (counted), and its own
	# memory stays small.
	rm -rf $T/np && mkdir -p $T/np && cp "$dir/netpeer" $T/np/
	timeout -s KILL 300 "$dir/netpeer" --deaf "$EC1" run --timeout 240 --timing --net fd:3 \
		--ip 10.0.2.15/24 -V $T/np:/mnt/np:ro -- /mnt/np/netpeer --flood eth0 50000 >$T/out 2>$T/err
	rc=$?
	sent=$(sed -n 's/^netpeer: sent \([0-9]*\) of.*/\1/p' $T/out)
	own=$(sed -n 's/.*VMM own \([0-9]*\).*/\1/p' $T/err)
	dropped=$(sed -n 's/.* \([0-9]*\) by the backend).*/\1/p' $T/err)
	echo "      (guest sent ${sent:-?} frames; the VMM dropped ${dropped:-?}; VMM's own memory ${own:-?} MiB)"
	if [ $rc = 0 ] && [ "${sent:-0}" -gt 10000 ] && [ "${dropped:-0}" -gt $((sent / 2)) ] &&
		[ "${own:-99}" -lt 16 ]; then pass $name
	else fail $name "rc $rc, sent ${sent:-?}, dropped ${dropped:-?}, own ${own:-?} MiB: $(tail -c 1500 $T/err)"; fi
	rm -rf $T/np
}
t_net_bad_options_exit_125_naming_them() {
	# A descriptor that is not open, a bad MAC, one that is no socket, --mac with --net none, a
	# TAP name with a slash.
	run --net fd:77 -- /bin/true 2>$T/e1; r1=$?
	run --net fd:3 --mac 01:00:00:00:00:01 -- /bin/true 3</dev/null 2>$T/e2; r2=$?
	run --net fd:3 -- /bin/true 3</dev/null 2>$T/e4; r4=$?
	run --net none --mac 02:00:00:00:00:01 -- /bin/true 2>$T/e3; r3=$?
	run --net tap:no/such -- /bin/true 2>$T/e5; r5=$?
	got="$r1 $(grep -c passt_fd $T/e1) $r2 $(grep -c multicast $T/e2) $r3 $(grep -c -- --mac $T/e3)"
	got="$got $r4 $(grep -c "not a stream socket" $T/e4) $r5 $(grep -c "network.tap" $T/e5)"
	check $name "125 1 125 1 125 1 125 1 125 1" "$got"
}

t_net_gvproxy_vfkit_peer_answers_ping() {
	# gvproxy's vfkit protocol (gvproxy is not in Debian): netpeer --vfkit listens on a unix
	# datagram socket as gvproxy -listen-vfkit does, takes the VFKT greeting, then serves
	# DHCP (192.168.127.2/24, gateway .1, gvproxy's own numbers), ARP and ICMP echo.
	rm -f $T/gv.sock
	timeout -s KILL 180 "$dir/netpeer" --vfkit $T/gv.sock "$EC1" run --timeout 120 \
		--net gvproxy:$T/gv.sock -- /bin/sh -c 'ifconfig eth0 | grep -o "192.168.127.2 ";
		ping -c 2 -W 10 192.168.127.1 | grep -o "2 packets received"' >$T/out 2>$T/err
	rc=$?
	echo "      ($(grep netpeer: $T/err | tr '\n' ' '))"
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|192.168.127.2  2 packets received |1 greetings, 0 datagrams before one|1 dhcp acks" \
		"$rc|$(tr '\n' ' ' <$T/out)|$(grep -o '1 greetings, 0 datagrams before one' $T/err)|$(grep -o '1 dhcp acks' $T/err)"
}
t_net_vmnet_on_builtin_with_fake_helper() {
	# --vmnet on the builtin engine: the helper's datagram socket becomes the device's backend;
	# the fake helper (tests/fake/fake_vmnet_helper.c) is a vmnet shared network with DHCP.
	FAKE_VMNET_LOG=$T/vmnet.log run --vmnet shared --vmnet-helper "$dir/fake-vmnet-helper" -- \
		/bin/sh -c 'ifconfig eth0 | grep -o "192.168.105.2 "; cat /etc/resolv.conf;
		ping -c 2 -W 10 192.168.105.1 | grep -o "2 packets received"' >$T/out 2>$T/err
	rc=$?
	[ $rc = 0 ] || { head -c 2000 $T/err; cat $T/vmnet.log; }
	check $name "0|192.168.105.2  nameserver 192.168.105.1 2 packets received |stopped|1 dhcp acks" \
		"$rc|$(tr '\n' ' ' <$T/out)|$(grep -o stopped $T/vmnet.log)|$(grep -o '1 dhcp acks' $T/vmnet.log)"
	rm -f $T/vmnet.log
}
t_net_passt_in_own_netns() {
	# --net passt in a network namespace of its own (a veth pair, 192.0.2.2/24 and 2001:db8::2/64,
	# default routes through 192.0.2.1 and 2001:db8::1): the guest has the host's IPv4 address
	# from passt's DHCP and an IPv6 one from its router advertisement (SLAAC), reaches the
	# namespace's loopback servers at the gateway addresses (IPv4 and IPv6), and serves a page
	# on published ports at the host's 127.0.0.1 and [::1], and a UDP echo. passt comes from the
	# staged directory.
	nat_tools
	mkdir -p $T/www $T/www6 && echo "hello from the host" >$T/www/index.html &&
		echo "hello over v6 from the host" >$T/www6/index.html
	cat >$T/passt.sh <<EOS
# (busybox ip names the peer itself: veth0 in a new namespace)
ip link set lo up && ip link add ec1v0 type veth && ip addr add 192.0.2.2/24 dev ec1v0 &&
echo 0 >/proc/sys/net/ipv6/conf/ec1v0/accept_dad && ip -6 addr add 2001:db8::2/64 dev ec1v0 &&
for i in \$(ip link | sed -n 's/^[0-9]*: \\([^:@]*\\).*/\\1/p'); do ip link set \$i up; done &&
ip route add default via 192.0.2.1 && ip -6 route add default via 2001:db8::1 || { ip link; exit 99; }
httpd -f -p 127.0.0.1:18085 -h $T/www & hp=\$!
httpd -f -p "[::1]:18088" -h $T/www6 & hp6=\$!
PATH=$dir:\$PATH timeout -s KILL 180 $EC1 run --timeout 120 --net passt -p 18086:80 -p "[::1]:18089:80" \\
	-p 17779:7777/udp -V $T/nt:/mnt/nt:ro -- /bin/sh -c 'ifconfig eth0 | grep -o "192.0.2.2 ";
	wget -q -O - http://192.0.2.1:18085/index.html; i=0
	until grep -q "^20010db8[0-9a-f]* [0-9a-f]* 40 00 00 " /proc/net/if_inet6 || [ \$i = 100 ]; do
		sleep 0.1; i=\$((i + 1)); done
	echo "v6 \$(grep -c "^20010db8[0-9a-f]* [0-9a-f]* 40 00 00 *eth0" /proc/net/if_inet6)"
	wget -q -O - "http://[2001:db8::1]:18088/index.html"; mkdir -p /tmp/w &&
	echo "hello from the guest" >/tmp/w/index.html && httpd -p 80 -h /tmp/w &&
	/mnt/nt/nettool --udp-echo 7777' >$T/out 2>$T/err & bg=\$!
"$dir/nettool" --get 127.0.0.1 18086 /index.html 120 2>/dev/null >$T/page
"$dir/nettool" --get ::1 18089 /index.html 60 2>/dev/null >$T/page6
"$dir/nettool" --udp-ask 127.0.0.1 17779 ping >$T/echo 2>&1
wait \$bg; rc=\$?
kill \$hp \$hp6
exit \$rc
EOS
	rm -f $T/out $T/page $T/page6 $T/echo
	unshare -n sh $T/passt.sh
	rc=$?
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|192.0.2.2  hello from the host v6 1 hello over v6 from the host nettool: listening nettool: got ping |hello from the guest|hello from the guest|echo: ping" \
		"$rc|$(tr '\n' ' ' <$T/out)|$(cat $T/page)|$(cat $T/page6)|$(cat $T/echo)"
	rm -rf $T/www $T/www6
}

# The user-mode NAT (libslirp), the builtin engine's default network. Host-side servers listen
# on the rig's 127.0.0.1 only; nettool (tests/vm/nettool.c) is staged into the guest by -V.
nat_tools() { rm -rf $T/nt && mkdir -p $T/nt && cp "$dir/nettool" $T/nt/; }
# wait_http PORT PATH SECONDS: the page at 127.0.0.1:PORT once it comes (a guest's server
# through a published port; the rig's busybox wget crashes on the host side).
wait_http() { "$dir/nettool" --get 127.0.0.1 "$1" "$2" "$3" 2>/dev/null; }
t_net_nat_by_default_guest_reaches_host_loopback() {
	# No --net: the guest has eth0 10.0.2.15, DNS 10.0.2.3, and 10.0.2.2 is the host's loopback.
	mkdir -p $T/www && echo "hello from the host" >$T/www/index.html
	httpd -f -p 127.0.0.1:18080 -h $T/www & hp=$!
	run -- /bin/sh -c 'wget -q -O - http://10.0.2.2:18080/index.html; cat /etc/resolv.conf;
		ifconfig eth0 | grep -o "10.0.2.15 "' >$T/out 2>$T/err
	rc=$?
	kill $hp; wait $hp 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|hello from the host nameserver 10.0.2.3 10.0.2.15  " "$rc|$(tr '\n' ' ' <$T/out)"
}
t_net_nat_libslirp_loaded_at_first_frame() {
	# EC1_NAT_LOAD=first-frame (the default on a host with one CPU): a guest that sends no
	# frame never has libslirp loaded; one that does is served from its first frame on.
	mkdir -p $T/www && echo "hello from the host" >$T/www/index.html
	httpd -f -p 127.0.0.1:18087 -h $T/www & hp=$!
	export EC1_NAT_LOAD=first-frame
	run --timing -- /bin/true 2>$T/err1
	rc1=$?
	run --timing -- wget -q -O - http://10.0.2.2:18087/index.html >$T/out 2>$T/err2
	rc2=$?
	unset EC1_NAT_LOAD
	kill $hp; wait $hp 2>/dev/null
	[ $rc2 = 0 ] || head -c 2000 $T/err2
	check $name "0|never started|0|hello from the host|started at the guest's first frame" \
		"$rc1|$(grep -o 'never started' $T/err1)|$rc2|$(cat $T/out)|$(grep -o "started at the guest's first frame" $T/err2)"
}
t_net_nat_published_tcp_and_udp_ports() {
	# -p 18081:80 reaches busybox httpd in the guest; -p 17777:7777/udp a UDP echo in it. The
	# guest ends when the datagram came, which the host sends only after it had the page.
	nat_tools
	run -p 18081:80 -p 127.0.0.1:17777:7777/udp -V $T/nt:/mnt/nt:ro -- /bin/sh -c \
		'mkdir -p /tmp/w && echo "hello from the guest" >/tmp/w/index.html &&
		httpd -p 80 -h /tmp/w && /mnt/nt/nettool --udp-echo 7777' >$T/out 2>$T/err & bg=$!
	page=$(wait_http 18081 /index.html 120)
	echo_=$("$dir/nettool" --udp-ask 127.0.0.1 17777 ping 2>&1)
	wait $bg; rc=$?
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|hello from the guest|echo: ping|nettool: got ping" \
		"$rc|$page|$echo_|$(grep got $T/out)"
}
t_net_nat_dns_through_the_hosts_resolver() {
	# The host's resolv.conf names a DNS server the test runs on 127.0.0.1 (bound over the
	# rig's own in a mount namespace); the guest asks 10.0.2.3 and gets its answer, over UDP
	# and over TCP (a 2 KB TXT record, which UDP carries only truncated). With a host
	# directory as the root, the guest sees 10.0.2.3 in /etc/resolv.conf, and the host's file
	# there is left as it was.
	nat_tools
	echo "nameserver 127.0.0.1" >$T/resolv.conf
	"$dir/nettool" --dns 127.0.0.1 ec1.test 10.9.8.7 & dp=$!
	made=; [ -e /etc/resolv.conf ] || { mkdir -p /etc && : >/etc/resolv.conf; made=1; }
	rm -rf $T/r && mkdir -p $T/r && (cd $T/r && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	mkdir -p $T/r/etc && echo "nameserver 192.0.2.1" >$T/r/etc/resolv.conf
	unshare -m sh -c "mount --bind $T/resolv.conf /etc/resolv.conf &&
		timeout -s KILL 180 $EC1 run --timeout 120 -V $T/nt:/mnt/nt:ro -- /bin/sh -c \
		'nslookup ec1.test 2>&1 | grep -o 10.9.8.7 | head -n1; nslookup nowhere.test >/dev/null 2>&1 || echo nx
		/mnt/nt/nettool --dns-tcp 10.0.2.3 ec1.test A; /mnt/nt/nettool --dns-tcp 10.0.2.3 ec1.test TXT' &&
		timeout -s KILL 180 $EC1 run --timeout 120 --root $T/r -- /bin/sh -c \
		'cat /etc/resolv.conf; nslookup ec1.test 2>&1 | grep -o 10.9.8.7 | head -n1'" >$T/out 2>$T/err
	rc=$?
	kill $dp; wait $dp 2>/dev/null
	[ -n "$made" ] && rm -f /etc/resolv.conf
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|10.9.8.7 nx dns-tcp: A 10.9.8.7 dns-tcp: TXT 2008 bytes in a 2046-byte answer nameserver 10.0.2.3 10.9.8.7 |nameserver 192.0.2.1" \
		"$rc|$(tr '\n' ' ' <$T/out)|$(cat $T/r/etc/resolv.conf)"
}
t_net_nat_restricted_reaches_only_published() {
	# nat:restricted: neither the host's loopback nor DNS, but the published ports work.
	nat_tools
	mkdir -p $T/www && echo "hello from the host" >$T/www/index.html
	httpd -f -p 127.0.0.1:18080 -h $T/www & hp=$!
	run --net nat:restricted -p 18082:80 -p 17778:7777/udp -V $T/nt:/mnt/nt:ro -- /bin/sh -c \
		'wget -q -T 5 -O - http://10.0.2.2:18080/index.html || echo no-host;
		nslookup -timeout=2 ec1.test 10.0.2.3 >/dev/null 2>&1 || echo no-dns;
		mkdir -p /tmp/w && echo "published" >/tmp/w/index.html &&
		httpd -p 80 -h /tmp/w && /mnt/nt/nettool --udp-echo 7777 >/dev/null' >$T/out 2>$T/err & bg=$!
	page=$(wait_http 18082 /index.html 150)
	"$dir/nettool" --udp-ask 127.0.0.1 17778 done >/dev/null 2>&1
	wait $bg; rc=$?
	kill $hp; wait $hp 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|no-host no-dns |published" "$rc|$(tr '\n' ' ' <$T/out)|$page"
}
t_net_nat_restricted_allow_list() {
	# nat:restricted with --allow: the allowed TCP and UDP destinations on the host's loopback
	# answer; another port on it is refused at once (the NAT's reset), ping and DNS go
	# nowhere; a published port still answers.
	nat_tools
	mkdir -p $T/www && echo "allowed page" >$T/www/index.html
	httpd -f -p 127.0.0.1:18080 -h $T/www & hp=$!
	httpd -f -p 127.0.0.1:18081 -h $T/www & hp2=$!
	"$dir/nettool" --udp-echo 17790 >/dev/null 2>&1 & up=$!
	run --net nat:restricted --allow 10.0.2.2:18080 --allow 10.0.2.2:17790/udp -p 18082:80 \
		-p 17791:7777/udp -V $T/nt:/mnt/nt:ro -- /bin/sh -c \
		'/mnt/nt/nettool --get 10.0.2.2 18080 /index.html 20;
		/mnt/nt/nettool --udp-ask 10.0.2.2 17790 hi;
		/mnt/nt/nettool --connect 10.0.2.2 18081;
		ping -c 1 -W 2 10.0.2.2 >/dev/null 2>&1 || echo no-ping;
		nslookup -timeout=2 ec1.test 10.0.2.3 >/dev/null 2>&1 || echo no-dns;
		mkdir -p /tmp/w && echo "published" >/tmp/w/index.html &&
		httpd -p 80 -h /tmp/w && /mnt/nt/nettool --udp-echo 7777 >/dev/null' >$T/out 2>$T/err & bg=$!
	page=$(wait_http 18082 /index.html 150)
	# The guest answers a published UDP port's sender: the filter lets that answer out.
	echo=$("$dir/nettool" --udp-ask 127.0.0.1 17791 done 2>&1)
	wait $bg; rc=$?
	kill $hp $hp2 $up 2>/dev/null; wait $hp $hp2 $up 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|allowed page echo: hi refused no-ping no-dns |published|echo: done" \
		"$rc|$(tr '\n' ' ' <$T/out)|$page|$echo"
}
t_net_nat_100_concurrent_connections() {
	nat_tools
	mkdir -p $T/www && echo "hello" >$T/www/index.html
	httpd -f -p 127.0.0.1:18080 -h $T/www & hp=$!
	run -V $T/nt:/mnt/nt:ro -- /mnt/nt/nettool --many 10.0.2.2 18080 100 >$T/out 2>$T/err
	rc=$?
	kill $hp; wait $hp 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|nettool: 100 of 100 answered" "$rc|$(cat $T/out)"
}
t_net_nat_bulk_tcp_both_ways_sha256() {
	# NET_BULK_MIB MiB (default 1024) guest -> host, then host -> guest through a published
	# port, compared by sha256 with what nettool --gen makes (2026-12-05, rig: 1 GiB each way
	# in 136 s with the boot, 181 s with the host's own hashing).
	nat_tools
	mib=${NET_BULK_MIB:-1024}; bytes=$((mib * 1048576))
	want=$("$dir/nettool" --gen $bytes | sha256sum | cut -c1-64)
	("$dir/nettool" --recv 127.0.0.1 18083 | sha256sum | cut -c1-64 >$T/h1) & rp=$!
	"$dir/nettool" --send 127.0.0.1 18084 $bytes & sp=$!
	t0=$(date +%s)
	timeout -s KILL 1500 "$EC1" run --timeout 1400 --mem 256 -p 18084:9001 -V $T/nt:/mnt/nt:ro -- /bin/sh -c \
		"/mnt/nt/nettool --send 10.0.2.2 18083 $bytes &&
		/mnt/nt/nettool --recv 0.0.0.0 9001 | sha256sum | cut -c1-64" >$T/out 2>$T/err
	rc=$?
	t1=$(date +%s)
	wait $rp; wait $sp
	echo "      ($mib MiB each way in $((t1 - t0)) s, boot included)"
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|$want|$want" "$rc|$(cat $T/h1)|$(cat $T/out)"
}
t_net_nat_guest_cannot_exhaust_host_sockets() {
	# 2,000 datagrams from 2,000 ports (each a host socket in a NAT that does not bound them):
	# the NAT keeps at most 256 open and drops the rest, counted (the guest kernel drops some
	# of its own first: it has no reply from 10.0.2.2 for the ones that went). Ten bursts of
	# 200, each no more than the guest kernel keeps while it waits for the gateway's ARP reply
	# (about 256: once it dropped all but 257 of a single burst of 2,000).
	nat_tools
	run --timing -V $T/nt:/mnt/nt:ro -- /bin/sh -c 'i=0; while [ $i -lt 10 ]; do
		/mnt/nt/nettool --udp-ports 10.0.2.2 9 200 || exit 1; sleep 0.1; i=$((i+1)); done |
		sort | uniq -c' >$T/out 2>$T/err
	rc=$?
	open=$(sed -n 's/.*nat: \([0-9]*\) host sockets open, \([0-9]*\) frames refused.*/\1/p' $T/err)
	refused=$(sed -n 's/.*nat: \([0-9]*\) host sockets open, \([0-9]*\) frames refused.*/\2/p' $T/err)
	echo "      ($(cat $T/out); ${open:-?} host sockets open at the end, ${refused:-?} frames refused)"
	if [ $rc = 0 ] && [ "${open:-999}" -le 256 ] && [ "${refused:-0}" -ge 100 ]; then pass $name
	else fail $name "rc $rc, open ${open:-?}, refused ${refused:-?}: $(tail -c 1500 $T/err)"; fi
}
t_net_ipv6_server_on_any_address_reached_through_published_port() {
	# The guest kernel has IPv6: busybox httpd listening on [::] (as nginx's default site does)
	# takes the host's IPv4 connection through a published port, and answers on ::1 in the guest.
	# On the NAT's eth0 IPv6 is off (libslirp has none here): no IPv6 address there, and lo has
	# ::1. The guest ends when the datagram came, which the host sends only after it had the page.
	nat_tools
	run -p 18092:80 -p 127.0.0.1:17780:7780/udp -V $T/nt:/mnt/nt:ro -- /bin/sh -c \
		'mkdir -p /tmp/w && echo "hello over v6" >/tmp/w/index.html && httpd -p "[::]:80" -h /tmp/w &&
		wget -q -O - "http://[::1]:80/index.html"; cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6
		echo "lo $(grep -c " lo$" /proc/net/if_inet6) eth0 $(grep -c " eth0$" /proc/net/if_inet6)"
		/mnt/nt/nettool --udp-echo 7780 >/dev/null' >$T/out 2>$T/err & bg=$!
	page=$(wait_http 18092 /index.html 120)
	echo_=$("$dir/nettool" --udp-ask 127.0.0.1 17780 done 2>&1)
	wait $bg; rc=$?
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|hello over v6|echo: done|hello over v6 1 lo 1 eth0 0 " \
		"$rc|$page|$echo_|$(tr '\n' ' ' <$T/out)"
}
t_net_none_leaves_only_loopback() {
	check $name "lo" "$(run --net none -- ls /sys/class/net | tr '\n' ' ' | sed 's/ $//')"
}
t_net_nat_bad_options_exit_125_naming_them() {
	httpd -f -p 127.0.0.1:18090 -h $T & hp=$!
	sleep 0.5
	run -p 70000:80 -- /bin/true 2>$T/e1; r1=$?
	run -p 18090:80 -- /bin/true 2>$T/e2; r2=$?
	run --net none -p 1:2 -- /bin/true 2>$T/e3; r3=$?
	run --net bogus -- /bin/true 2>$T/e4; r4=$?
	run -p 1.2.3:8080:80 -- /bin/true 2>$T/e5; r5=$?
	run -p "[::1]:18093:80" -- /bin/true 2>$T/e6; r6=$?
	kill $hp; wait $hp 2>/dev/null
	got="$r1 $(grep -c 'publish\[0\].*70000:80.*1..65535' $T/e1) $r2 $(grep -c 'publish 127.0.0.1:18090:80' $T/e2)"
	got="$got $r3 $(grep -c -- --publish $T/e3) $r4 $(grep -c -- '--net' $T/e4) $r5 $(grep -c 'IPv4' $T/e5)"
	got="$got $r6 $(grep -c 'publish\[0\].*::1.*needs passt' $T/e6)"
	check $name "125 1 125 1 125 1 125 1 125 1 125 1" "$got"
	[ "$got" = "125 1 125 1 125 1 125 1 125 1 125 1" ] || cat $T/e1 $T/e2 $T/e3 $T/e4 $T/e5 $T/e6
}

# vsock to host unix sockets: vsocktool (tests/vm/vsocktool.c) on both sides, staged into the guest
# by -V with nettool (the data).
vsock_tools() { rm -rf $T/vt && mkdir -p $T/vt && cp "$dir/vsocktool" "$dir/nettool" $T/vt/; }
t_vsock_100mib_echoed_through_host_server() {
	# A guest connection to port 5000 reaches a host echo server: 100 MiB there and back, the
	# credit of each side exercised; the guest's half-close reaches the host as EOF, the
	# host's close the guest as EOF.
	vsock_tools
	"$dir/vsocktool" unix-echo $T/echo.sock >$T/ended & ep=$!
	want=$("$dir/nettool" --gen 104857600 | sha256sum | cut -c1-64)
	run --vsock 5000:$T/echo.sock -V $T/vt:/mnt/vt:ro -- /bin/sh -c \
		'/mnt/vt/nettool --gen 104857600 | /mnt/vt/vsocktool connect 5000 | sha256sum | cut -c1-64' \
		>$T/out 2>$T/err
	rc=$?
	sleep 0.5
	kill $ep; wait $ep 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|$want|vsocktool: ended" "$rc|$(cat $T/out)|$(cat $T/ended)"
}
t_vsock_listen_reaches_guest_server() {
	# --vsock PORT:PATH,listen: ec1 listens at PATH (mode 0600); a host client there reaches the
	# guest's listener on PORT (once it listens: before, a connection is closed at once).
	vsock_tools
	rm -f $T/out
	run --vsock 6000:$T/l.sock,listen -V $T/vt:/mnt/vt:ro -- /mnt/vt/vsocktool listen 6000 1 \
		>$T/out 2>$T/err & bg=$!
	for i in $(seq 1200); do grep -q listening $T/out 2>/dev/null && break; sleep 0.1; done
	mode=$(stat -c %a $T/l.sock 2>/dev/null || echo none)
	got=$(echo "hello through vsock" | "$dir/vsocktool" unix-connect $T/l.sock 2>&1)
	wait $bg; rc=$?
	after=$(stat -c %a $T/l.sock 2>/dev/null || echo gone)
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|hello through vsock|vsocktool: listening|600 gone" \
		"$rc|$got|$(cat $T/out)|$mode $after"
}
t_vsock_unmapped_port_refused_and_many_at_once() {
	# A port nothing is mapped to: the guest's connect is reset at once. Then 100 connections
	# open at once to the echo server, each answered.
	vsock_tools
	"$dir/vsocktool" unix-echo $T/echo.sock >/dev/null & ep=$!
	run --vsock 5000:$T/echo.sock -V $T/vt:/mnt/vt:ro -- /bin/sh -c \
		'/mnt/vt/vsocktool connect 7777 </dev/null; /mnt/vt/vsocktool many 5000 100' \
		>$T/out 2>$T/err
	rc=$?
	kill $ep; wait $ep 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|vsocktool: connect: Connection reset by peer vsocktool: 100 of 100 answered " \
		"$rc|$(tr '\n' ' ' <$T/out)"
}
t_vsock_works_again_after_the_driver_is_rebound() {
	# The guest's vsock driver lets go of the device (unbind: reset) with a connection open and
	# takes it again (bind): a new connection is echoed.
	vsock_tools
	"$dir/vsocktool" unix-echo $T/echo.sock >/dev/null & ep=$!
	run --vsock 5000:$T/echo.sock -V $T/vt:/mnt/vt:ro -- /bin/sh -c '
		d=/sys/bus/virtio/drivers/vmw_vsock_virtio_transport
		v=$(basename $(readlink -f $d/virtio*)); sleep 30 | /mnt/vt/vsocktool connect 5000 >/dev/null 2>&1 &
		sleep 1; echo $v >$d/unbind; echo $v >$d/bind
		echo "echoed after a rebind" | /mnt/vt/vsocktool connect 5000' >$T/out 2>$T/err
	rc=$?
	kill $ep; wait $ep 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|echoed after a rebind" "$rc|$(cat $T/out)"
}
t_vsock_guest_exit_closes_host_connections() {
	# The guest ends with three connections open: the host server sees each of them end.
	vsock_tools
	"$dir/vsocktool" unix-echo $T/echo.sock >$T/ended & ep=$!
	run --vsock 5000:$T/echo.sock -V $T/vt:/mnt/vt:ro -- /bin/sh -c \
		'for i in 1 2 3; do sleep 60 | /mnt/vt/vsocktool connect 5000 >/dev/null & done; sleep 2' \
		>$T/out 2>$T/err
	rc=$?
	for i in $(seq 50); do [ "$(grep -c ended $T/ended)" = 3 ] && break; sleep 0.1; done
	kill $ep; wait $ep 2>/dev/null
	check $name "0|3" "$rc|$(grep -c ended $T/ended)"
}
t_vsock_firecracker_uds() {
	# --vsock-uds PATH: a host client says "CONNECT 52" and gets "OK N" once the guest's
	# listener took it; the guest's connection to port 53 reaches PATH_53.
	vsock_tools
	"$dir/vsocktool" unix-echo $T/fc.sock_53 >/dev/null & ep=$!
	run --vsock-uds $T/fc.sock -V $T/vt:/mnt/vt:ro -- /bin/sh -c \
		'echo to-host | /mnt/vt/vsocktool connect 53; /mnt/vt/vsocktool listen 52 1' \
		>$T/out 2>$T/err & bg=$!
	got=$(echo "from the host" | "$dir/vsocktool" unix-connect $T/fc.sock 52 2>$T/ok)
	wait $bg; rc=$?
	kill $ep; wait $ep 2>/dev/null
	[ $rc = 0 ] || head -c 2000 $T/err
	check $name "0|to-host vsocktool: listening |from the host|OK" \
		"$rc|$(tr '\n' ' ' <$T/out)|$got|$(grep -o 'OK' $T/ok | head -1)"
}
t_vsock_bad_options_exit_125_naming_them() {
	mkdir -p $T/notsock
	run --vsock 0:$T/x -- /bin/true 2>$T/e1; r1=$?
	run --vsock 9:$T/notsock,listen -- /bin/true 2>$T/e2; r2=$?
	run --vsock 9:$T/a --vsock 9:$T/b -- /bin/true 2>$T/e3; r3=$?
	got="$r1 $(grep -c 'vsock.*0:' $T/e1) $r2 $(grep -c 'notsock: exists and is not a socket' $T/e2)"
	got="$got $r3 $(grep -c 'vsock.port: 9: already added' $T/e3)"
	check $name "125 1 125 1 125 1" "$got"
	[ "$got" = "125 1 125 1 125 1" ] || cat $T/e1 $T/e2 $T/e3
}

# Long-lived VMs: ec1 start, exec, ls, stop, logs; their state under a run directory of the test's.
export EC1_RUN_DIR=$T/run
E() { timeout -s KILL 150 "$EC1" "$@"; }
t_exec_session_start_exec_ls_logs_stop() {
	# A VM started without a command stays up; exec runs commands in it with split streams,
	# stdin, environment, working directory and exit status; ls lists it; stop leaves no process,
	# socket or directory behind.
	E start --name s1 --mem 256 2>$T/err; rc=$?
	pid=$(cat $T/run/s1/pid 2>/dev/null)
	mode=$(stat -c %a $T/run/s1/exec.sock 2>/dev/null)
	out=$(E exec s1 -- /bin/sh -c 'echo out; echo err >&2; exit 7' 2>$T/err2); st=$?
	in=$(printf 'one\ntwo\n' | E exec -i s1 -- /bin/sh -c 'wc -l')
	envwd=$(E exec -e FOO=bar -w /tmp s1 -- /bin/sh -c 'echo $FOO $(pwd) $HOME')
	nf=$(E exec s1 -- /no/such/program 2>/dev/null; echo $?)
	tty=$(E exec -t s1 -- /bin/sh -c 'tty; stty size' | tr -d '\r' | tr '\n' ' ')
	ls=$(E ls | awk '$1 == "s1" {print $2 == "'$pid'", $3}')
	E stop s1; src=$?
	left=$(ls $T/run 2>/dev/null | tr '\n' ' ')
	alive=$(kill -0 "$pid" 2>/dev/null && echo alive || echo gone)
	check $name "0|600|out|err|7|2|bar /tmp /|127|/dev/pts/0 24 80 |1 running|0||gone" \
		"$rc|$mode|$out|$(cat $T/err2)|$st|$in|$envwd|$nf|$tty|$ls|$src|$left|$alive"
	[ $rc = 0 ] || head -c 1500 $T/err
}
t_exec_8mib_stdin_and_stdout_sha256() {
	# 8 MiB through an exec's stdin and 8 MiB back through its stdout, checked by sha256 (the
	# agent's flow control both ways: the process reads slower than the host sends).
	E start --name sx --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	head -c 8388608 /dev/urandom >$T/in8
	want=$(sha256sum <$T/in8 | cut -d' ' -f1)
	got=$(E exec -i sx -- /bin/sh -c 'sha256sum | cut -d" " -f1' <$T/in8)
	back=$(E exec -i sx -- /bin/cat <$T/in8 | sha256sum | cut -d' ' -f1)
	E stop sx
	check $name "$want $want" "$got $back"
}
t_exec_reader_gone_fails_the_writers_next_write() {
	# As with ec1 run: `ec1 exec VM -- yes | head -n 1` ends with SIGPIPE's 141, and the VM
	# goes on serving; stderr's reader gone, too.
	E start --name sp --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	{ E exec sp -- yes; echo $? >$T/st1; } | head -n 1 >$T/o1
	{ E exec sp -- /bin/sh -c 'yes >&2' 2>&1 >/dev/null; echo $? >$T/st2; } | head -n 1 >/dev/null
	# With a terminal (-t), whose reader is gone: the terminal hangs up (SIGHUP).
	{ E exec -t sp -- yes; echo $? >$T/st3; } | head -n 1 >/dev/null
	after=$(E exec sp -- echo still serving)
	E stop sp
	check $name "141 y|141|129|still serving" "$(cat $T/st1) $(cat $T/o1)|$(cat $T/st2)|$(cat $T/st3)|$after"
}
t_exec_log_kept_to_a_bound() {
	# A chatty long-lived VM keeps at most two log files of EC1_LOG_MAX_MIB and the rest of a line
	# (here 1 MiB, of 2.7 MB written; 8 by default: the run directory is often a tmpfs, memory),
	# each of whole lines: ec1 logs prints the newest lines, whole and in order, and ec1 logs -f,
	# following all along, got every line. A bad EC1_LOG_MAX_MIB is refused, named.
	EC1_LOG_MAX_MIB=0 E start --name lx 2>$T/err; bad="$? $(grep -c 'EC1_LOG_MAX_MIB: "0": expected a number 1..1024' $T/err)"
	EC1_LOG_MAX_MIB=1 E start --name lb --mem 256 -- /bin/sh -c 'sleep 2; seq 1 400000; echo last; sleep 100' \
		2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	E logs -f lb >$T/follow & lf=$!
	for i in $(seq 1200); do [ "$(E logs lb | tail -n 1)" = last ] && break; sleep 0.1; done
	sizes=$(for f in log log.1; do s=$(stat -c %s $T/run/lb/$f); [ "$s" -le $((1048576 + 65536)) ] && echo ok; done | tr '\n' ' ')
	kept=$(E logs lb | awk 'NR == 1 { p = $1 - 1 } $1 != "last" { if ($1 != p + 1) bad++; p = $1 }
		END { print (NR >= 100000 ? "many" : NR) " " bad + 0 " " p " " $1 }')
	E stop lb
	wait $lf
	all=$(awk '$1 != "last" { if ($1 != p + 1) bad++; p = $1 } END { print NR " " bad + 0 " " $1 }' $T/follow)
	rm -f $T/follow
	check $name "125 1|ok ok |many 0 400000 last|400001 0 last" "$bad|$sizes|$kept|$all"
}
t_exec_terminal_keys_ctrl_c_resize_and_status() {
	# ec1 exec -it on a terminal (tests/vm/ptydrive.c types to it): the guest's shell has a
	# terminal of ec1's size; typed lines run; Ctrl-C interrupts the command in front (130), not
	# the shell; a resize reaches the guest (SIGWINCH); exit's status is ec1's.
	[ -x "$dir/ptydrive" ] || { echo "SKIP: $name: no ptydrive built"; return; }
	ptys
	E start --name tt --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	out=$("$dir/ptydrive" 24 80 's:stty size; tty\r' 'w:24 80' 'w:/dev/pts/' \
		'r:40,132' 'p:500' 's:stty size\r' 'w:40 132' \
		's:sleep 100\r' 'p:1500' 's:\x03' 's:echo "after int $?"\r' 'w:after int 130' \
		's:exit 3\r' -- timeout -s KILL 120 "$EC1" exec -it tt -- /bin/sh 2>&1)
	E stop tt
	check $name "exit 3" "$out"
}
t_exec_100_in_a_row_and_10_at_once() {
	# 100 execs one after another, then 10 at once, each with its own output and status.
	E start --name s2 --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	ok=0
	for i in $(seq 100); do
		r=$(E exec s2 -- /bin/sh -c "echo $i; exit $((i % 50))")
		[ "$r $?" = "$i $((i % 50))" ] && ok=$((ok + 1))
	done
	for i in $(seq 10); do
		(E exec s2 -- /bin/sh -c "sleep 0.5; echo x$i; echo e$i >&2; exit $i" >$T/o$i 2>$T/e$i
		 echo $? >$T/s$i) &
	done
	wait
	par=0
	for i in $(seq 10); do
		[ "$(cat $T/o$i)|$(cat $T/e$i)|$(cat $T/s$i)" = "x$i|e$i|$i" ] && par=$((par + 1))
	done
	E stop s2
	check $name "100 10" "$ok $par"
}
t_exec_signals_reach_process() {
	# SIGINT to ec1 exec reaches the process (its trap runs, its status comes back); a command
	# that ignores SIGTERM is killed when the VM stops, and its ec1 exec says so (137). ec1
	# exec is signalled itself (not through timeout, which would not pass SIGINT on).
	E start --name s3 --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	"$EC1" exec s3 -- /bin/sh -c 'trap "echo got INT; exit 3" INT; echo ready; while :; do sleep 0.1; done' \
		>$T/out & ex=$!
	for i in $(seq 300); do grep -q ready $T/out && break; sleep 0.1; done
	kill -INT $ex; wait $ex; st=$?
	E exec s3 -- /bin/sh -c 'trap "" TERM; echo ready; while :; do sleep 0.1; done' >$T/out2 & ex=$!
	for i in $(seq 300); do grep -q ready $T/out2 && break; sleep 0.1; done
	E stop -t 1 s3; src=$?
	wait $ex; st2=$?
	check $name "ready got INT|3|0|137" "$(cat $T/out | tr '\n' ' ' | sed 's/ $//')|$st|$src|$st2"
}
t_exec_vmm_kill9_noticed() {
	# kill -9 of the VM's process: ec1 ls says dead, exec fails clearly (125), the exec that was
	# running ends with 125 and why, stop cleans up.
	E start --name s4 --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	pid=$(cat $T/run/s4/pid)
	E exec s4 -- /bin/sh -c 'echo ready; sleep 60' >$T/out 2>$T/err1 & ex=$!
	for i in $(seq 300); do grep -q ready $T/out && break; sleep 0.1; done
	kill -9 $pid
	wait $ex; st=$?
	state=$(E ls | awk '$1 == "s4" {print $3}')
	E exec s4 -- /bin/true 2>$T/err2; st2=$?
	E stop s4 2>/dev/null; src=$?
	left=$(ls $T/run 2>/dev/null | tr '\n' ' ')
	check $name "125|closed|dead|125|not running|0|" \
		"$st|$(grep -o closed $T/err1)|$state|$st2|$(grep -o 'not running' $T/err2)|$src|$left"
}
t_exec_guest_poweroff_ends_the_vm() {
	# A long-lived VM whose guest powers itself off (poweroff -f through exec: the kernel halts)
	# ends as one whose CMD ended does: its process exits and cleans up after itself, ls no
	# longer lists it. (Before, it stayed "running" with every vCPU halted.)
	E start --name s10 --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	pid=$(cat $T/run/s10/pid)
	E exec s10 -- /bin/sh -c 'poweroff -f' >/dev/null 2>&1
	for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	alive=$(kill -0 "$pid" 2>/dev/null && echo alive || echo gone)
	check $name "gone||" "$alive|$(E ls | awk '$1 == "s10"')|$(ls $T/run 2>/dev/null | tr '\n' ' ')"
	[ "$alive" = gone ] || E stop -t 1 s10 2>/dev/null
}
t_exec_full_table_and_root_dir() {
	# 64 processes at once is the agent's limit: the 65th is told so (125) while the 64 run on.
	# A VM with a host directory as its root runs exec'd commands in that root.
	E start --name s8 --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	for i in $(seq 64); do
		E exec s8 -- /bin/sh -c "echo up; exec sleep 60" >$T/up$i 2>&1 &
	done
	for i in $(seq 600); do [ "$(cat $T/up* 2>/dev/null | grep -c up)" -ge 64 ] && break; sleep 0.1; done
	E exec s8 -- /bin/true 2>$T/e65; full=$?
	up=$(cat $T/up* | grep -c up)
	E stop -t 5 s8; wait
	rm -f $T/up*
	rm -rf $T/rootdir && mkdir -p $T/rootdir && (cd $T/rootdir && cpio -id <"$dir/rootfs.cpio" 2>/dev/null)
	echo marker >$T/rootdir/marker
	E start --name s9 --mem 256 --root $T/rootdir 2>$T/err; rc=$?
	root=$(E exec s9 -- /bin/cat /marker)
	E exec s9 -- /bin/sh -c 'echo from-guest >/made-in-guest'
	E stop s9
	check $name "64|125 as many|0|marker|from-guest" \
		"$up|$full $(grep -o 'as many' $T/e65)|$rc|$root|$(cat $T/rootdir/made-in-guest 2>&1)"
}
t_exec_api_session() {
	# examples/session.c: ec1_ctx_start, two ec1_exec (stdin from a pipe; SIGKILL), ec1_ctx_stop.
	check $name "got: from the host|statuses: 5 137; vm 0 (ok)" "$("$dir/session" 2>&1 | tr '\n' '|' | sed 's/|$//')"
}
t_exec_errors_and_start_with_command() {
	# An unknown VM, a name taken, a bad option (its message through ec1 start), a bad name:
	# 125 with a message. With CMD, the VM ends when CMD does, its output in the log.
	E exec nosuch -- /bin/true 2>$T/e1; a=$?
	E start --name s5 --mem 256 2>$T/err || { fail $name "start: $(head -c 500 $T/err)"; return; }
	E start --name s5 --mem 256 2>$T/e2; b=$?
	E stop s5
	E start --name s6 --cpus 99 2>$T/e3; c=$?
	E start --name ../x 2>$T/e4; d=$?
	E start --name s7 --mem 256 -- /bin/sh -c 'echo main says hi; sleep 4' 2>$T/err; e=$?
	for i in $(seq 30); do logged=$(E logs s7); [ -n "$logged" ] && break; sleep 0.1; done
	for i in $(seq 300); do [ -e $T/run/s7 ] || break; sleep 0.1; done
	check $name "125 no VM named|125 runs|125 --cpus|125 not a VM name|0|main says hi|gone" \
		"$a $(grep -o 'no VM named' $T/e1)|$b $(grep -o runs $T/e2)|$c $(grep -o -- --cpus $T/e3)|$d $(grep -o 'not a VM name' $T/e4)|$e|$logged|$([ -e $T/run/s7 ] && echo there || echo gone)"
}

# A malicious driver: hostile (tests/vm/hostile.c, a static guest program) takes over a virtio-fs
# device nobody mounted ("victim") through /dev/mem: its registers, and rings and buffers in 1 MiB
# of guest RAM that memmap= keeps from the guest kernel. Output in $T/hout and $T/herr.
hostile_run() { # SCENARIO [SEED [MARKDIR]]
	rm -rf $T/h $T/v && mkdir -p $T/h $T/v && cp "$dir/hostile" $T/h/ && echo data >$T/v/f
	run --mem 256 --cmdline 'memmap=0x100000$0x4000000' --volume $T/h:/mnt/h --share victim:$T/v \
		-- /mnt/h/hostile victim "$@" >$T/hout 2>$T/herr
}
# wait_file FILE SECONDS [PID]: until FILE exists; no longer than SECONDS, nor than PID lives.
wait_file() {
	i=0
	while [ ! -e "$1" ] && [ $i -lt $(($2 * 10)) ] && { [ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null; }; do
		sleep 0.1; i=$((i+1))
	done
	[ -e "$1" ]
}
t_hostile_malformed_rings_stop_the_run() {
	# Each broken ring ends the run: exit 125 and a message naming the device, never a crash
	# or a hang.
	got= want= seen=
	for how in loop indirect-loop outside huge beyond; do
		hostile_run $how; rc=$?
		if grep -q 'guest driver error on virtio-fs' $T/herr; then m=said; else m="[$(head -c 300 $T/herr)]"; fi
		got="$got $how:$rc:$m" want="$want $how:125:said"
		seen="$seen; $how: $(grep -o 'virtio-fs: [^;]*' $T/herr | head -1)"
	done
	echo "      (${seen#; })"
	check $name "$want" "$got"
}
t_hostile_random_register_writes() {
	# 100,000 random register writes over rings of random bytes: the VMM stops the run with a
	# message, or the device still serves a clean session afterwards.
	got= want= seen=
	for seed in 1 2 3; do
		hostile_run random $seed; rc=$?
		writes=$(sed -n 's/^hostile: \([0-9]*\) writes.*/\1/p' $T/hout | tail -1)
		if [ $rc = 0 ] && grep -q 'still serving' $T/hout; then r=ok how="served after 100000"
		elif [ $rc = 125 ] && grep -q 'guest driver error on virtio-' $T/herr; then
			r=ok how="stopped after ${writes:-?}+ writes: $(grep -o 'virtio-fs: [^;]*' $T/herr | head -1)"
		else r="rc $rc [$(cat $T/hout) $(head -c 300 $T/herr)]" how=; fi
		got="$got $seed:$r" want="$want $seed:ok" seen="$seen; seed $seed: $how"
	done
	echo "      (${seen#; })"
	check $name "$want" "$got"
}
t_hostile_vsock_packets_reset_or_dropped() {
	# hostile drives the vsock device itself (the kernel's driver unbound): wrong CIDs, another
	# socket type, unknown ops, lengths past the buffer, data for no connection, an unmapped port,
	# a cut header, 5,000 random headers: each answered with a reset or not at all; then a clean
	# connection to a host echo server echoes a line, and the VMM is alive to the end. Then 8
	# connections left open and the device reset: the VMM holds 8 more descriptors while they
	# are open, and none of them once the driver reset the device (the host peers see the end),
	# and it does not spin afterwards.
	vsock_tools
	rm -rf $T/h && mkdir -p $T/h && cp "$dir/hostile" $T/h/
	"$dir/vsocktool" unix-echo $T/hecho.sock >/dev/null & ep=$!
	run --mem 256 --cmdline 'memmap=0x100000$0x4000000' --volume $T/h:/mnt/h \
		--vsock 5000:$T/hecho.sock -- /mnt/h/hostile vsock 5000 /mnt/h >$T/hout 2>$T/herr & bg=$!
	fd0=? fd1=? fd2=? cpu=?
	if wait_file $T/h/start 120 $bg; then
		pid=$(ec1_pid)
		fd0=$(fds $pid)
		if wait_file $T/h/open 60 $bg; then
			fd1=$(fds $pid)
			if wait_file $T/h/reset 60 $bg; then
				sleep 1
				c0=$(ticks $pid)
				sleep 2
				cpu=$(( $(ticks $pid) - c0 ))
				fd2=$(fds $pid)
			fi
		fi
	fi
	wait $bg; rc=$?
	kill $ep; wait $ep 2>/dev/null
	echo "      ($(tr '\n' ' ' <$T/hout); VMM descriptors $fd0, with 8 open $fd1, after the reset $fd2; $cpu ticks of CPU in 2 s after it)"
	# (Each mark the guest makes adds a descriptor: the share server's node of the new file.)
	closed=no
	[ "$fd2" != ? ] && [ "$fd1" -ge $((fd0 + 8)) ] && [ "$fd2" -le $((fd1 - 7)) ] &&
		[ "$cpu" -lt 100 ] && closed=yes
	check $name "0|hostile: still serving|yes" "$rc|$(grep -o 'hostile: still serving' $T/hout)|$closed"
	[ $rc = 0 ] || head -c 1500 $T/herr
	rm -rf $T/h # its marks, which a later test waiting for its own would take for them
}
t_hostile_blk_requests_answered_and_contained() {
	# hostile drives a disk itself (the kernel's driver unbound): requests that lie (past the end,
	# wrapping around, not whole sectors, a header cut short, bad discard and write-zeroes
	# segments, a read-only disk's writes), each with the status it must get; 5,000 random
	# requests, direct and indirect, each answered; 200 resets with requests in flight; then a
	# clean session. On a raw, a read-only and a qcow2 image and a direct-I/O one: each stays its
	# size, the read-only one unchanged, the qcow2 one clean for qemu-img check, and the clean
	# write is where it was asked. A request with no room for its status stops the run, naming
	# the device.
	rm -rf $T/h && mkdir -p $T/h && cp "$dir/hostile" $T/h/
	sectors=8200 # 4 MiB and 8 KiB: the size hostile tells the disk apart by
	head -c $((sectors * 512)) /dev/urandom >$T/hraw.img && cp $T/hraw.img $T/hro.img
	ro_sum=$(sha256sum <$T/hro.img)
	qimg create -q -f qcow2 $T/hq.qcow2 $((sectors * 512)) || { fail $name "qemu-img create"; return; }
	# And direct I/O: a copy of the raw image where the directory takes O_DIRECT, else the rig's
	# RAM block device /dev/ram1 (its own size).
	kinds="raw ro qcow2" dsectors=$sectors ddisk=
	rm -f $T/probe
	if dd if=/dev/zero of=$T/probe bs=4096 count=1 oflag=direct 2>/dev/null; then
		head -c $((sectors * 512)) /dev/urandom >$T/hdir.img && ddisk=$T/hdir.img
	elif [ -b /dev/ram1 ]; then
		ddisk=/dev/ram1 dsectors=$(cat /sys/block/ram1/size)
	fi
	rm -f $T/probe
	[ -z "$ddisk" ] || kinds="$kinds direct"
	got= want= seen=
	for kind in $kinds; do
		ks=$sectors
		case $kind in
		raw) disk=$T/hraw.img arg= ;;
		ro) disk=$T/hro.img,ro arg=ro ;;
		qcow2) disk=$T/hq.qcow2 arg= ;;
		direct) disk=$ddisk,direct arg= ks=$dsectors ;;
		esac
		run --mem 256 --cmdline 'memmap=0x100000$0x4000000' --volume $T/h:/mnt/h \
			--disk $disk,id=victim -- /mnt/h/hostile blk $ks victim $arg >$T/hout 2>$T/herr
		rc=$?
		seen="$seen; $kind: $(grep -e lying -e random -e clean $T/hout | sed 's/hostile: blk: //' | tr '\n' ' ')"
		r="$rc $(grep -o 'still serving' $T/hout)"
		case $kind in
		raw) r="$r $(stat -c %s $T/hraw.img) $(dd if=$T/hraw.img bs=4096 skip=1 count=1 2>/dev/null | sort -u)" ;;
		ro) r="$r $([ "$(sha256sum <$T/hro.img)" = "$ro_sum" ] && echo unchanged || echo changed)" ;;
		qcow2)
			qimg check -q $T/hq.qcow2 >$T/check 2>&1; c=$?
			qimg convert -f qcow2 -O raw $T/hq.qcow2 $T/hq.raw
			r="$r check $c $(stat -c %s $T/hq.raw) $(dd if=$T/hq.raw bs=4096 skip=1 count=1 2>/dev/null | sort -u)" ;;
		direct) r="$r $(dd if=$ddisk bs=4096 skip=1 count=1 2>/dev/null | sort -u)" ;;
		esac
		got="$got|$kind: $r"
		[ $rc = 0 ] || { cat $T/hout; head -c 1000 $T/herr; }
	done
	want="|raw: 0 still serving $((sectors * 512)) ec1-hostile-blk|ro: 0 still serving unchanged"
	want="$want|qcow2: 0 still serving check 0 $((sectors * 512)) ec1-hostile-blk"
	[ -z "$ddisk" ] || want="$want|direct: 0 still serving ec1-hostile-blk"
	run --mem 256 --cmdline 'memmap=0x100000$0x4000000' --volume $T/h:/mnt/h \
		--disk $T/hraw.img,id=victim -- /mnt/h/hostile blk-nostatus $sectors >$T/hout 2>$T/herr
	rc=$?
	got="$got|nostatus: $rc $(grep -o 'guest driver error on virtio-blk' $T/herr | head -1)"
	want="$want|nostatus: 125 guest driver error on virtio-blk"
	echo "      (${seen#; }; nostatus: $(grep -o 'virtio-blk: [^;]*' $T/herr | head -1))"
	check $name "$want" "$got"
	rm -f $T/hraw.img $T/hro.img $T/hq.qcow2 $T/hq.raw $T/hdir.img
}
t_hostile_net_frames_dropped_and_counted() {
	# hostile drives the network device itself (the kernel's driver unbound): 12 frames cut
	# short, oversized, asking for offloads the NAT does not take, in device-writable buffers,
	# each dropped and counted (a run with those alone: exactly 12); then, in a second run,
	# receive buffers the device cannot write, 3,000 random frames, most for the NAT, 100 resets
	# with frames in flight. Each run ends with a clean ARP request the NAT answers.
	rm -rf $T/h && mkdir -p $T/h && cp "$dir/hostile" $T/h/
	got= seen=
	for what in lies all; do
		run --mem 256 --cmdline 'memmap=0x100000$0x4000000' --volume $T/h:/mnt/h \
			--net nat:restricted --timing -- /mnt/h/hostile net ${what%all} >$T/hout 2>$T/herr
		rc=$?
		sent=$(sed -n 's/^hostile: net: \([0-9]*\) malformed.*/\1/p' $T/hout)
		dropped=$(sed -n 's/.*, \([0-9]*\) dropped as malformed.*/\1/p' $T/herr | head -1)
		seen="$seen; $what: $(grep 'hostile: net' $T/hout | sed 's/hostile: net: //' | tr '\n' ' ')/ $(grep -o 'ec1 virtio-net: sent.*' $T/herr | head -1)"
		[ $what = lies ] && got="$got|$what: $rc $(grep -o 'still serving' $T/hout) $sent sent $dropped dropped"
		[ $what = all ] && got="$got|$what: $rc $(grep -o 'still serving' $T/hout)"
		[ $rc = 0 ] || { cat $T/hout; head -c 1500 $T/herr; }
	done
	echo "      (${seen#; })"
	check $name "|lies: 0 still serving 12 sent 12 dropped|all: 0 still serving" "$got"
}
t_hostile_driver_abuse_leaves_vmm_serving() {
	# Lying headers, resets in the middle of I/O, 8 sessions of 1,024 open handles each ended by
	# a reset, an interrupt storm: afterwards the device serves a clean session, and while the
	# guest idles the VMM holds no more descriptors than before the attack, its memory is
	# bounded and it does not spin.
	rm -rf $T/h # no mark of an earlier test's: hostile_run clears it too, but in the background
	hostile_run survive 1 /mnt/h & bg=$!
	fd0=? fd1=? rss=? cpu=?
	if wait_file $T/h/start 120 $bg; then
		pid=$(ec1_pid)
		fd0=$(fds $pid)
		if wait_file $T/h/quiet 150 $bg; then
			fd1=$(fds $pid)
			rss=$(awk '/^VmHWM:/ {print $2}' /proc/$pid/status)
			c0=$(ticks $pid)
			sleep 3
			cpu=$(( $(ticks $pid) - c0 ))
		fi
	fi
	wait $bg; rc=$?
	summary="rc $rc, fds $fd0 then $fd1, peak RSS $rss kB, $cpu ticks of CPU in 3 s idle; $(grep -e opened -e storm $T/hout | tr '\n' ' ')"
	echo "      ($summary)"
	if [ $rc = 0 ] && grep -q 'still serving' $T/hout && [ "$fd1" != ? ] && [ "$cpu" != ? ] &&
		[ "$fd1" -le $((fd0 + 2)) ] && [ "$rss" -lt $(( (256 + 64) * 1024 )) ] && [ "$cpu" -lt 100 ]
	then pass $name; else fail $name "$summary; $(tr '\n' ' ' <$T/hout) $(head -c 300 $T/herr)"; fi
}

# A heartbeat on the output while the suite runs, so that the rig's stall detector (run-in-rig
# -s: a silent console) tells a rig that stopped (its timers stop, and this line with them) from
# a test that is slow and quiet (the 1 GiB transfers take minutes). Not a child of this shell,
# whose tests wait for their own children; it ends with the suite.
suite_pid=$$
(while sleep 60 && kill -0 $suite_pid 2>/dev/null; do echo "      (heartbeat $(date +%T))"; done &
	echo $! >"$T/heartbeat")
heartbeat=$(cat "$T/heartbeat")
# Every t_* function, in the order they are written.
for t in $(grep -o '^t_[a-z0-9_]*' "$0"); do
	selected $t || continue
	name=${t#t_}
	start=$(date +%s)
	$t
	echo "      ($(( $(date +%s) - start ))s)"
done
kill "$heartbeat" 2>/dev/null
rm -rf "$T"
