/* The semaphore of the `exitscope:record` USDT probe (probes/include/exitscope/probe_bus.h). sys/sdt.h names
 * it <provider>_<probe>_semaphore and records its address in the probe's ELF note; the kernel
 * increments it in every process that maps this binary while a uprobe with that reference
 * counter is attached (libbpf's bpf_program__attach_usdt does so), and decrements it on detach. */
__extension__ volatile unsigned short exitscope_record_semaphore __attribute__((unused, section(".probes")));
