#!/bin/sh
# VM test suite: every test boots a real microVM with `ec1 run`. Runs where a guest can boot —
# on hardware KVM, or inside the test rig on a PVM host (tests/run decides). Prints one
# "PASS: name", "FAIL: name: why" or "SKIP: name: why" line per test.
# usage: suite.sh DIR   (DIR holds ec1, hello, libec1.so.0, vmlinux, rootfs.cpio)
dir=$1
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

# Host directories through virtio-fs.
fsdir() { rm -rf $T/fs && mkdir -p $T/fs; }
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
t_hostile_driver_abuse_leaves_vmm_serving() {
	# Lying headers, resets in the middle of I/O, 8 sessions of 1,024 open handles each ended by
	# a reset, an interrupt storm: afterwards the device serves a clean session, and while the
	# guest idles the VMM holds no more descriptors than before the attack, its memory is
	# bounded and it does not spin.
	hostile_run survive 1 /mnt/h & bg=$!
	fd0=? fd1=? rss=? cpu=?
	if wait_file $T/h/start 120 $bg; then
		pid=$(ec1_pid)
		fd0=$(ls /proc/$pid/fd | wc -l)
		if wait_file $T/h/quiet 150 $bg; then
			fd1=$(ls /proc/$pid/fd | wc -l)
			rss=$(awk '/^VmHWM:/ {print $2}' /proc/$pid/status)
			c0=$(awk '{print $14 + $15}' /proc/$pid/stat)
			sleep 3
			cpu=$(( $(awk '{print $14 + $15}' /proc/$pid/stat) - c0 ))
		fi
	fi
	wait $bg; rc=$?
	summary="rc $rc, fds $fd0 then $fd1, peak RSS $rss kB, $cpu ticks of CPU in 3 s idle; $(grep -e opened -e storm $T/hout | tr '\n' ' ')"
	echo "      ($summary)"
	if [ $rc = 0 ] && grep -q 'still serving' $T/hout && [ "$fd1" != ? ] && [ "$cpu" != ? ] &&
		[ "$fd1" -le $((fd0 + 2)) ] && [ "$rss" -lt $(( (256 + 64) * 1024 )) ] && [ "$cpu" -lt 100 ]
	then pass $name; else fail $name "$summary; $(tr '\n' ' ' <$T/hout) $(head -c 300 $T/herr)"; fi
}

# Every t_* function, in the order they are written.
for t in $(grep -o '^t_[a-z0-9_]*' "$0"); do
	selected $t || continue
	name=${t#t_}
	start=$(date +%s)
	$t
	echo "      ($(( $(date +%s) - start ))s)"
done
rm -rf "$T"
