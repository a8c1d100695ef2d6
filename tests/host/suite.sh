#!/bin/sh
# Host test suite: the CLI's behaviour that needs no running guest. Runs everywhere.
# usage: suite.sh BUILD_DIR
build=$1
EC1=$build/ec1
T=$(mktemp -d)
mode=$("$(dirname "$0")/../../scripts/kvm-mode")

pass() { echo "PASS: $name"; }
fail() { echo "FAIL: $name: $1"; }
skip() { echo "SKIP: $name: $1"; }
# expect RC PATTERN CMD...: CMD exits with RC and its stderr matches PATTERN
expect() {
	rc=$1 pat=$2; shift 2
	"$@" >$T/out 2>$T/err; got=$?
	if [ "$got" = "$rc" ] && grep -q -- "$pat" $T/err; then pass
	else fail "exit $got (want $rc), stderr: $(head -c 300 $T/err)"; fi
}

t_cli_help_documents_every_option() {
	"$EC1" run --help >$T/help
	for o in --cpus --mem --kernel --initramfs --cmdline --env --workdir --timeout --backend --timing \
		--console --vmnet --vmnet-helper --root --volume --share --net --publish --mac --ip; do
		grep -q -- "$o" $T/help || { fail "help lacks $o"; return; }
	done
	pass
}
t_cli_rejects_bad_publish() {
	expect 125 'network.publish\[0\]: "80": expected \[ADDR:\]HOST:GUEST' "$EC1" run -p 80 -- /bin/true
}
t_cli_rejects_publish_twice() {
	expect 125 'publish\[1\].*8080/tcp published twice' "$EC1" run -p 8080:80 -p 8080:81 -- /bin/true
}
t_cli_rejects_publish_without_nat() {
	expect 125 '--publish: only with the NAT or passt' "$EC1" run --net none -p 8080:80 -- /bin/true
}
# passt is started when the network is set, before any VM: its failures come back named.
t_cli_passt_port_taken_named() {
	command -v passt >/dev/null || { skip "no passt (apt-get install passt)"; return; }
	rm -f $T/held
	python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",18931)); s.listen(); open(sys.argv[1], "w").close(); time.sleep(30)' $T/held & hold=$!
	for i in $(seq 100); do [ -e $T/held ] && break; sleep 0.1; done
	expect 125 'network.passt: passt exited (status 1): Failed to bind any port for .*18931' \
		"$EC1" run --net passt -p 18931:80 -- /bin/true
	kill $hold 2>/dev/null; wait $hold 2>/dev/null
}
t_cli_passt_missing_named() {
	expect 125 'network.passt: passt: not found (Debian: apt-get install passt)' \
		env PATH=/nonexistent "$EC1" run --net passt -- /bin/true
}
t_cli_passt_stops_with_the_run() {
	# A run that fails after the network is set (no such kernel) leaves no passt behind.
	command -v passt >/dev/null || { skip "no passt (apt-get install passt)"; return; }
	before=$(pgrep -c '^passt')
	"$EC1" run --net passt --kernel /no/such -- /bin/true >/dev/null 2>&1
	sleep 0.3
	after=$(pgrep -c '^passt')
	[ "$after" = "$before" ] && [ -z "$(ls -d ${TMPDIR:-/tmp}/ec1-passt-* 2>/dev/null)" ] && pass ||
		fail "passt processes $before -> $after; dirs: $(ls -d ${TMPDIR:-/tmp}/ec1-passt-* 2>/dev/null)"
}
t_cli_gvproxy_unreachable_named() {
	expect 125 'network.gvproxy_path: /no/such.sock: No such file' "$EC1" run --net gvproxy:/no/such.sock -- /bin/true
	: >$T/not-a-socket
	expect 125 "network.gvproxy_path: $T/not-a-socket: connect: Connection refused" \
		"$EC1" run --net gvproxy:$T/not-a-socket -- /bin/true
}
t_cli_ip_checked_and_not_for_the_nat() {
	expect 125 'network.address: "10.0.2.300/24": expected ADDR/PREFIX' \
		"$EC1" run --net tap:ec1x --ip 10.0.2.300/24 -- /bin/true
	expect 125 'network.gateway: "nope"' "$EC1" run --net tap:ec1x --ip 10.0.2.9/24,gw=nope -- /bin/true
	expect 125 '--ip: "mtu=9000": unknown option' "$EC1" run --net tap:ec1x --ip 10.0.2.9/24,mtu=9000 -- /bin/true
	expect 125 "--ip: for --net passt, fd:, gvproxy:, tap: or --vmnet" "$EC1" run --ip 10.0.2.9/24 -- /bin/true
}
t_cli_kernel_initramfs_disk_from_a_pipe_refused() {
	# A shell's <(...) is a pipe: it would be waited on, or read as an empty file.
	mkfifo $T/fifo
	expect 125 "kernel.path: $T/fifo: a FIFO or pipe, not a file" "$EC1" run --kernel $T/fifo -- /bin/true
	expect 125 "kernel.initramfs: $T/fifo: a FIFO or pipe, not a file" \
		"$EC1" run --kernel "$EC1" --initramfs $T/fifo -- /bin/true
	expect 125 "--disk: $T/fifo: a FIFO or pipe, not a disk image" "$EC1" run --disk $T/fifo -- /bin/true
	rm -f $T/fifo
}
t_cli_disk_sync_option_checked() {
	# sync takes none, relaxed or full.
	dd if=/dev/zero of=$T/r.img bs=1M count=0 seek=1 2>/dev/null
	expect 125 'unknown option "sync=fast"' "$EC1" run --disk $T/r.img,sync=fast -- /bin/true
	rm -f $T/r.img
}
t_cli_disk_fstype_and_part_need_mount() {
	# part= and fstype= say how mount= mounts the disk: without it they would be dropped unseen.
	dd if=/dev/zero of=$T/r.img bs=1M count=0 seek=1 2>/dev/null
	expect 125 '"'$T'/r.img,fstype=ext4": fstype=FS names the file system mount= mounts: give mount' \
		"$EC1" run --disk $T/r.img,fstype=ext4 -- /bin/true
	expect 125 'part=N says which partition mount= mounts: give mount' \
		"$EC1" run --disk $T/r.img,part=2 -- /bin/true
	rm -f $T/r.img
}
t_cli_root_options_and_vmnet_helper_need_their_option() {
	# Options that qualify another one are refused without it, not dropped.
	expect 125 '--root-options: only with --root' "$EC1" run --root-options ro -- /bin/true
	expect 125 '--vmnet-helper: only with --vmnet' "$EC1" run --vmnet-helper /bin/true -- /bin/true
}
t_cli_vmnet_and_net_exclusive() {
	expect 125 '--vmnet and --net: one network at a time' "$EC1" run --vmnet shared --net none -- /bin/true
}
t_cli_variants_show_network_for_builtin() {
	"$EC1" variants >$T/v
	hdr=$(head -n1 $T/v); line=$(grep '^builtin ' $T/v)
	# The columns of "network" and "nat" on the builtin line.
	col() { echo "$hdr" | tr -s ' ' '\n' | grep -n "^$1\$" | cut -d: -f1; }
	n=$(col network); a=$(col nat)
	v1=$(echo "$line" | tr -s ' ' | cut -d' ' -f$n); v2=$(echo "$line" | tr -s ' ' | cut -d' ' -f$a)
	if [ -n "$n" ] && [ "$v1|$v2" = "yes|yes" ]; then pass; else fail "network/nat columns: [$v1|$v2] in: $line"; fi
}
t_cli_rejects_bad_cpus() { expect 125 '--cpus: "0": expected a number 1..64' "$EC1" run --cpus 0 -- /bin/true; }
t_cli_rejects_bad_mem() { expect 125 '--mem: "lots"' "$EC1" run --mem lots -- /bin/true; }
t_cli_rejects_bad_timeout() { expect 125 '--timeout' "$EC1" run --timeout -1 -- /bin/true; }
t_cli_rejects_bad_env() { expect 125 '--env: "NOVALUE": expected K=V' "$EC1" run --env NOVALUE -- /bin/true; }
t_cli_requires_command() { expect 125 'no command given' "$EC1" run; }
t_cli_bad_kernel_path_named() {
	expect 125 'kernel.path: /no/such/vmlinux: No such file or directory' "$EC1" run --kernel /no/such/vmlinux -- /bin/true
}
t_cli_missing_kvm_device_explained() {
	EC1_KVM_DEVICE=/nonexistent/kvm expect 125 '/nonexistent/kvm: No such file or directory: this machine offers no KVM' \
		"$EC1" run -- /bin/true
}
t_cli_kvm_permission_explained() {
	if [ "$(id -u)" = 0 ]; then
		# root ignores file modes: drop to nobody to see the permission error.
		command -v setpriv >/dev/null || { skip "setpriv missing"; return; }
		[ -c /dev/kvm ] || { skip "no /dev/kvm"; return; }
		EC1_KERNEL=/proc/self/exe expect 125 'Permission denied: add the user to the group' \
			setpriv --reuid=65534 --regid=65534 --clear-groups env LD_LIBRARY_PATH="$build" "$EC1" run -- /bin/true
	else
		skip "needs root to test as another user"
	fi
}
t_cli_pvm_host_explained() {
	[ "$mode" = pvm ] || { skip "not a PVM host"; return; }
	expect 125 'PVM (module kvm_pvm), not hardware KVM' "$EC1" run -- /bin/true
}
t_cli_stub_backend_not_available() { expect 125 'not available' "$EC1" run --backend stub -- /bin/true; }
t_cli_unknown_backend() { expect 125 '--backend: "qemu"' "$EC1" run --backend qemu -- /bin/true; }
t_cli_variants_lists_backends() {
	"$EC1" variants >$T/v
	for b in builtin libkrun libkrun-sev libkrun-efi stub; do
		grep -q "^$b " $T/v || { fail "no row for $b"; return; }
	done
	pass
}
t_cli_variants_finds_libkrun_by_soname() {
	# The fake libkrun builds carry the real sonames and file names: dlopen finds them on the
	# library path, and the row says the version found and what it can do (no vmnet in 1.9).
	LD_LIBRARY_PATH="$build/tests/fake/v1.9:$build/tests/fake/sev:$build" "$EC1" variants >$T/v
	grep -q "^libkrun  *yes  *1.9.0 " $T/v || { fail "libkrun 1.9: $(cat $T/v)"; return; }
	grep -q "^libkrun-sev  *yes  *1.17.0  *-  *-  *yes " $T/v || { fail "sev row: $(grep sev $T/v)"; return; }
	grep -q "^libkrun-efi  *no " $T/v || { fail "libkrun-efi exists for macOS only: $(cat $T/v)"; return; }
	grep -q "^stub  *no " $T/v || { fail "stub should be unavailable"; return; }
	vmnet_col() { awk -v b="$1" '$1 == b { print $8 }' $T/v; }
	[ "$(vmnet_col libkrun)" = - ] || { fail "libkrun 1.9 has no vmnet: $(cat $T/v)"; return; }
	LD_LIBRARY_PATH="$build/tests/fake/v1.15:$build" "$EC1" variants >$T/v
	[ "$(vmnet_col libkrun)" = yes ] || { fail "libkrun 1.15 has vmnet: $(cat $T/v)"; return; }
	pass
}
t_example_runs_unchanged_on_fake_libkrun_and_stub() {
	# The seed's example (examples/hello.c) on each libkrun version: exactly these calls, made by
	# the helper process ec1_run starts the VM in. libkrun-sev starts no guest without a TEE
	# configuration, which the example sets none of: refused before libkrun is asked to start.
	rm -f $T/calls
	FAKE_KRUN_LOG=$T/calls EC1_BACKEND=libkrun-sev LD_LIBRARY_PATH="$build/tests/fake/sev:$build" \
		"$build/hello" >$T/out 2>&1 && { fail "libkrun-sev without a TEE configuration ran"; return; }
	grep -q 'no TEE configuration file set' $T/out && ! grep -q '^krun_start_enter' $T/calls ||
		{ fail "libkrun-sev: $(cat $T/out) $(cat $T/calls)"; return; }
	for v in 1.9 1.15 1.17 1.18; do
		rm -f $T/calls
		FAKE_KRUN_LOG=$T/calls EC1_BACKEND=libkrun LD_LIBRARY_PATH="$build/tests/fake/v$v:$build" \
			"$build/hello" >$T/out 2>&1 || { fail "libkrun $v: $(cat $T/out)"; return; }
		printf '%s\n' "krun_set_log_level 3" "krun_set_log_level 3" "krun_create_ctx" \
			"krun_set_vm_config 7 2 1024" "krun_set_exec 7 /bin/echo [Hello World] [PATH=/bin]" \
			"krun_start_enter 7" >$T/want
		cmp -s $T/want $T/calls || { fail "libkrun $v calls: $(cat $T/calls)"; return; }
	done
	EC1_BACKEND=stub "$build/hello" >$T/out 2>&1 && { fail "stub run succeeded"; return; }
	grep -q 'not available' $T/out || { fail "stub: $(cat $T/out)"; return; }
	pass
}
t_cli_libkrun_volumes_staged() {
	# ec1 run --volume on (fake) libkrun 1.18: no krun_set_mapped_volumes (-EINVAL since 1.8);
	# a staging root with ec1's init, the root and each volume a virtio-fs device of their own
	# (read-only through krun_add_virtiofs3), the staging root gone after the run.
	rm -f $T/calls
	mkdir -p $T/vol
	FAKE_KRUN_LOG=$T/calls FAKE_KRUN_EXIT=5 LD_LIBRARY_PATH="$build/tests/fake/v1.18:$build" \
		"$EC1" run --backend libkrun --root / --volume $T/vol:/data:ro -- /bin/ls /data \
		>$T/out 2>$T/err; rc=$?
	[ $rc = 5 ] || { fail "exit $rc: $(cat $T/err)"; return; }
	stage=$(sed -n 's/^krun_set_root 7 //p' $T/calls)
	case $stage in /tmp/ec1-krun-*) ;; *) fail "calls: $(cat $T/calls)"; return ;; esac
	[ ! -e "$stage" ] || { fail "staging root $stage left behind"; return; }
	grep -q "^krun_add_virtiofs 7 ec1.root /$" $T/calls &&
		grep -q "^krun_add_virtiofs3 7 ec1.vol0 $T/vol 0 1$" $T/calls &&
		grep -q '^krun_set_exec 7 /.ec1/init \[--krun-stage\]' $T/calls &&
		! grep -q mapped_volumes $T/calls || { fail "calls: $(cat $T/calls)"; return; }
	# 1.17 has no krun_add_virtiofs3: a read-only volume is refused, naming the version.
	LD_LIBRARY_PATH="$build/tests/fake/v1.17:$build" expect 125 \
		'volumes\[0\]: ro needs krun_add_virtiofs3 (libkrun 1.18 or later); the loaded libkrun.so.1 (1.17.0)' \
		"$EC1" run --backend libkrun --root / --volume $T/vol:/data:ro -- /bin/true
}
t_cli_libkrun_disk_options() {
	# ec1 run --disk on (fake) libkrun: direct and sync=none through krun_add_disk3 (1.19),
	# refused on 1.18 naming the call and version; a qcow2 image naming a backing file reaches
	# libkrun (which opens it) only with ,backing.
	command -v qemu-img >/dev/null || { skip "no qemu-img (apt-get install qemu-utils)"; return; }
	rm -f $T/calls $T/raw.img $T/base.img $T/top.qcow2
	truncate -s 1M $T/raw.img $T/base.img
	qemu-img create -q -f qcow2 -b $T/base.img -F raw $T/top.qcow2
	LD_LIBRARY_PATH="$build/tests/fake/v1.18:$build" expect 125 \
		'disk_flags: disk "disk0": direct I/O needs krun_add_disk3 (libkrun 1.19 or later); the loaded libkrun.so.1 (1.18.0) has none' \
		"$EC1" run --backend libkrun --disk $T/raw.img,direct -- /bin/true
	[ "$(cat $T/calls 2>/dev/null)" = "" ] || { fail "1.18 was called: $(cat $T/calls)"; return; }
	LD_LIBRARY_PATH="$build/tests/fake/v1.19:$build" expect 125 \
		"disk \"disk1\": $T/top.qcow2: the image names a backing file ($T/base.img), which libkrun would open for the guest" \
		"$EC1" run --backend libkrun --disk $T/raw.img --disk $T/top.qcow2 -- /bin/true
	FAKE_KRUN_LOG=$T/calls LD_LIBRARY_PATH="$build/tests/fake/v1.19:$build" \
		"$EC1" run --backend libkrun --disk $T/raw.img,id=fast,direct,sync=none \
		--disk $T/top.qcow2,backing,ro -- /bin/true >$T/out 2>$T/err || { fail "exit $?: $(cat $T/err)"; return; }
	grep -q "^krun_add_disk3 7 fast $T/raw.img 0 0 1 0$" $T/calls &&
		grep -q "^krun_add_disk2 7 disk1 $T/top.qcow2 1 1$" $T/calls && pass ||
		fail "calls: $(cat $T/calls)"
}
t_cli_root_missing_dir_named() { expect 125 'root: /no/such/root: No such file or directory' "$EC1" run --root /no/such/root -- /bin/true; }
t_cli_volume_bad_spec_named() { expect 125 'volumes\[0\]: "/tmp:relative": guest path must be absolute' "$EC1" run --volume /tmp:relative -- /bin/true; }
t_cli_share_bad_spec_named() { expect 125 '--share: "data": expected TAG:DIR' "$EC1" run --share data -- /bin/true; }
t_cli_vmnet_on_libkrun_with_helper() {
	# ec1 run --vmnet on the (fake) libkrun: the helper gets --fd 3 and the mode, libkrun gets
	# the helper's socket with vmnet's MAC, the run exits with the guest status, the helper stops.
	rm -f $T/calls $T/helper
	FAKE_KRUN_LOG=$T/calls FAKE_VMNET_LOG=$T/helper FAKE_KRUN_EXIT=4 LD_LIBRARY_PATH="$build/tests/fake/v1.18:$build" \
		"$EC1" run -v --backend libkrun --vmnet host-isolated --vmnet-helper "$build/tests/fake/fake-vmnet-helper" \
		-- /bin/true >$T/out 2>$T/err; rc=$?
	[ $rc = 4 ] || { fail "exit $rc: $(cat $T/err)"; return; }
	grep -q '^krun_add_net_unixgram 7 NULL dgram 0a:bb:cc:dd:ee:0f 0 0 arp=ok$' $T/calls ||
		{ fail "calls: $(cat $T/calls)"; return; }
	grep -q 'ec1: vmnet: mac 0a:bb:cc:dd:ee:0f mtu 1500 range 192.168.105.1-192.168.105.254' $T/err ||
		{ fail "no vmnet line: $(cat $T/err)"; return; }
	[ "$(cat $T/helper)" = "--fd 3 --operation-mode host --enable-isolation
stopped
1 frames, 0 dhcp acks, 0 echo replies" ] || { fail "helper: $(cat $T/helper)"; return; }
	pass
}
t_cli_vmnet_bad_mode_named() { expect 125 '--vmnet: "nat": expected shared' "$EC1" run --vmnet nat -- /bin/true; }
t_cli_vmnet_needs_helper_off_macos() {
	LD_LIBRARY_PATH="$build/tests/fake/v1.18:$build" expect 125 'vmnet: macOS only' \
		"$EC1" run --backend libkrun --vmnet shared -- /bin/true
}
t_install_honours_destdir() {
	DESTDIR=$T/inst meson install -C "$build" --no-rebuild --quiet >$T/inst.log 2>&1 ||
		{ fail "meson install: $(tail -3 $T/inst.log)"; return; }
	for f in bin/ec1 include/ec1/ec1.h share/ec1/rootfs.cpio share/ec1/vmlinux libexec/ec1/ec1-krun \
		libexec/ec1/ec1-full; do
		[ -e "$T/inst/usr/local/$f" ] || { fail "missing $f"; return; }
	done
	ls "$T"/inst/usr/local/lib*/*/libec1.so.0 "$T"/inst/usr/local/lib*/*/libec1.a \
		"$T"/inst/usr/local/lib*/*/pkgconfig/ec1.pc >/dev/null 2>&1 || ls "$T"/inst/usr/local/lib/libec1.so.0 >/dev/null 2>&1 ||
		{ fail "library files missing: $(find $T/inst -name '*ec1*')"; return; }
	pass
}
t_cli_static_front_runs_the_full_cli() {
	# ec1 is static (no program interpreter: exec, ls, stop, logs start without a loader); run,
	# start and variants run ec1-full beside it or installed, and say so when there is none.
	readelf -l "$EC1" | grep -q INTERP && { fail "ec1 has a program interpreter"; return; }
	readelf -l "$build/ec1-full" | grep -q INTERP || { fail "ec1-full is not dynamic"; return; }
	"$EC1" variants | grep -q '^builtin ' || { fail "variants through ec1-full: $("$EC1" variants 2>&1 | head -3)"; return; }
	mkdir -p $T/alone && cp "$EC1" $T/alone/
	EC1_RUN_DIR=$T/alone/run $T/alone/ec1 ls >/dev/null || { fail "ls alone failed"; return; }
	libexec=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; o={x["name"]: x["value"] for x in json.load(sys.stdin)}; print(o["prefix"] + "/" + o["libexecdir"])')
	if [ -e "$libexec/ec1/ec1-full" ]; then pass; return; fi # installed: the alone copy finds it
	expect 125 "variants needs the library: running $libexec/ec1/ec1-full: No such file" $T/alone/ec1 variants
}
t_cli_logs_print_the_moved_log_then_the_newest() {
	# A VM's log moved on (log.1, then log: what its process leaves when the log passes 8 MiB)
	# is printed whole and in order, by logs and by logs -f of a VM no longer running (whose lock
	# nobody holds), which ends. A name with no directory is said.
	mkdir -p $T/lr/v1 && : >$T/lr/v1/lock
	seq 1 50000 >$T/lr/v1/log.1 && seq 50001 60000 >$T/lr/v1/log
	a=$(EC1_RUN_DIR=$T/lr "$EC1" logs v1 | awk '$1 != NR { bad++ } END { print NR, bad + 0 }')
	b=$(EC1_RUN_DIR=$T/lr timeout 20 "$EC1" logs -f v1 | awk '$1 != NR { bad++ } END { print NR, bad + 0 }')
	EC1_RUN_DIR=$T/lr "$EC1" logs v2 2>$T/err; c=$?
	got="$a|$b|$c $(grep -c 'no VM named v2' $T/err)"
	if [ "$got" = "60000 0|60000 0|125 1" ]; then pass; else fail "[$got]"; fi
}
t_vmm_sets_up_and_tears_down_natively() {
	# KVM set-up ioctls work on PVM too: build the whole VM, then tear it down without running it.
	case $mode in none | rig) skip "no usable /dev/kvm"; return ;; esac
	EC1_ALLOW_PVM=1 EC1_SETUP_ONLY=1 "$EC1" run --cpus 2 -- /bin/true 2>$T/err; rc=$?
	if [ $rc = 0 ]; then pass; else fail "exit $rc: $(cat $T/err)"; fi
}

t_vmm_files_call_each_other_in_no_loop() {
	# src/vmm's files form layers (README, Architecture): no file uses one that uses it back.
	if out=$("$(dirname "$0")/../../scripts/check-layering" "$build" 2>&1); then pass
	else fail "$out"; fi
}
t_library_exports_only_the_public_api() {
	# libec1.so exports the functions ec1.h declares and nothing else (no ec1_fail, no backend
	# tables, no helpers a program could come to depend on).
	hdr="$(dirname "$0")/../../include/ec1/ec1.h"
	nm -D --defined-only "$build/libec1.so" | awk '$2 ~ /[TDRB]/ {sub(/@.*/, "", $3); print $3}' |
		sort -u >$T/exported
	tr -s ' \t' '\n\n' <"$hdr" | grep -o '^\**ec1_[a-z0-9_]*(' | tr -d '*(' | sort -u >$T/declared
	extra=$(comm -23 $T/exported $T/declared | tr '\n' ' ') missing=$(comm -13 $T/exported $T/declared | tr '\n' ' ')
	if [ -z "$extra$missing" ]; then pass; else fail "exported, not in ec1.h: [$extra]; in ec1.h, not exported: [$missing]"; fi
}
t_disks_opened_or_refused_naming_them() {
	# Set up natively (no guest runs): a qcow2 image opens; a backing file needs ",backing"; a
	# damaged header is refused with the field named.
	case $mode in none | rig) skip "no usable /dev/kvm"; return ;; esac
	command -v qemu-img >/dev/null || { skip "no qemu-img"; return; }
	setup_only() { EC1_ALLOW_PVM=1 EC1_SETUP_ONLY=1 "$EC1" run "$@" -- /bin/true; }
	rm -f $T/b.raw $T/top.qcow2 $T/bad.qcow2
	dd if=/dev/zero of=$T/b.raw bs=1M count=0 seek=4 2>/dev/null
	qemu-img create -q -f qcow2 -b b.raw -F raw $T/top.qcow2
	qemu-img create -q -f qcow2 $T/bad.qcow2 4M && printf '\377' | dd of=$T/bad.qcow2 bs=1 seek=23 conv=notrunc 2>/dev/null
	setup_only --disk $T/top.qcow2,backing 2>$T/e1; r1=$?
	setup_only --disk $T/top.qcow2 2>$T/e2; r2=$?
	setup_only --disk $T/bad.qcow2,id=broken 2>$T/e3; r3=$?
	got="$r1 $r2 $r3 $(grep -c 'disk disk0: .*names a backing file (b.raw)' $T/e2) $(grep -c 'disk broken: .*cluster_bits' $T/e3)"
	if [ "$got" = "0 125 125 1 1" ]; then pass; else fail "[$got] $(cat $T/e1 $T/e2 $T/e3)"; fi
}
t_vmm_timing_names_every_setup_step() {
	# The set-up steps, devices among them, come from one table and each has its name.
	case $mode in none | rig) skip "no usable /dev/kvm"; return ;; esac
	mkdir -p $T/share
	dd if=/dev/zero of=$T/disk.img bs=1M count=0 seek=4 2>/dev/null
	EC1_ALLOW_PVM=1 EC1_SETUP_ONLY=1 "$EC1" run --timing --share a:$T/share --share b:$T/share \
		--disk $T/disk.img -- /bin/true 2>$T/err; rc=$?
	steps=$(sed -n 's/^ec1 vmm-setup (ms)://p' $T/err | tr '|' '\n' | awk '{print $1}' | tr '\n' ' ')
	if [ $rc = 0 ] && [ "$steps" = "kvm memory kernel irqchip console shares disks network vsock registers cmdline initrd vcpus " ]
	then pass; else fail "exit $rc, steps [$steps]: $(head -c 300 $T/err)"; fi
}

for t in $(grep -o '^t_[a-z0-9_]*' "$0"); do
	name=${t#t_}
	$t
done
rm -rf "$T"
