// Package vm runs a command as root inside a small virtual machine that boots one of
// Debian's own kernels, so that lab tests which need IPv4 multicast routing
// (CONFIG_IP_MROUTE) run on hosts whose kernel lacks it, and on the kernels users run.
//
// The guest shares the host's userland: the host's root is its root over 9p, with a
// fresh /dev, /proc, /sys, /tmp and /run of its own (unix sockets cannot be bound on
// 9p). Its init is this package's Init, in the same static binary as the host side,
// packed into an initramfs with the few modules needed to mount that root.
//
//	host                                         guest (qemu, KVM or TCG)
//	Fetch: apt-get download linux-image-*  ──►   vmlinuz + modules (cached)
//	Boot: initramfs = /init + 9p modules  ──►   Init: mount 9p root, chroot,
//	job dir (9p "job"): job.json, rc      ◄──►       load lab modules, run the command
//	stdout, stderr  ◄── unix sockets ◄── ttyS1, ttyS2; kernel console on ttyS0
package vm
