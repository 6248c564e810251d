// The tracefs format parser and the layout check of probes/kvm: a format the decoder knows is
// resolved at the kernel's offsets, one it does not know is refused with a sentence naming the
// event and the kernel, never decoded at guessed offsets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "probes/kvm/kvm_decode.h"
#include "probes/kvm/kvm_loader.h"
#include "probes/kvm/tracefs_format.h"

namespace {

using namespace es::kvm;

std::string read_data(const std::string& name) {
  std::ifstream in(std::string(ES_KVM_TEST_DATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const size_t p = s.find(from);
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

// kvm_exit as Linux 5.4 declared it (arch/x86/kvm/trace.h then: exit_reason, guest_rip, isa,
// info1, info2; no vcpu_id, no intr_info / error_code).
constexpr const char* kExit54 =
    "name: kvm_exit\nID: 1031\nformat:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
    "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"
    "\tfield:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:unsigned long guest_rip;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:u32 isa;\toffset:24;\tsize:4;\tsigned:0;\n"
    "\tfield:u64 info1;\toffset:32;\tsize:8;\tsigned:0;\n"
    "\tfield:u64 info2;\toffset:40;\tsize:8;\tsigned:0;\n\n"
    "print fmt: \"reason %s rip 0x%lx info %llx %llx\", ...\n";

TEST(TracefsFormat, ParsesThisKernelsKvmExit) {
  auto fmt = parse_format(read_data("kvm_exit-6.18.format"), "kvm_exit-6.18.format");
  ASSERT_TRUE(fmt) << fmt.error();
  EXPECT_EQ(fmt->name, "kvm_exit");
  const FormatField* info2 = fmt->find("info2");
  ASSERT_NE(info2, nullptr);
  EXPECT_EQ(info2->offset, 40u);
  EXPECT_EQ(info2->size, 8u);
  EXPECT_EQ(fmt->find("common_pid"), nullptr);  // common fields are not the event's
  auto l = resolve_layout(ES_KVM_EV_EXIT, *fmt, "6.18.44");
  ASSERT_TRUE(l) << l.error();
  EXPECT_TRUE(l->has(kIntrInfo));
  EXPECT_EQ(l->at[kInfo2].offset, 40 - ES_KVM_RAW_BASE);
}

TEST(TracefsFormat, DecodesAnEventAtTheFormatsOffsets) {
  auto fmt = parse_format(read_data("kvm_exit-6.18.format"), "f");
  ASSERT_TRUE(fmt);
  auto l = resolve_layout(ES_KVM_EV_EXIT, *fmt, "6.18.44");
  ASSERT_TRUE(l);
  es_kvm_event e{};
  e.event = ES_KVM_EV_EXIT;
  e.raw_len = l->copy_len;
  EXPECT_EQ(l->copy_len, 60u - ES_KVM_RAW_BASE);  // to the end of vcpu_id, the last field read
  auto put = [&](uint32_t entry_off, uint64_t v, size_t n) { std::memcpy(e.raw + entry_off - ES_KVM_RAW_BASE, &v, n); };
  put(8, 48, 4);                   // exit_reason EPT_VIOLATION
  put(16, 0xffffffff81000000, 8);  // guest_rip
  put(24, 1, 4);                   // isa VMX
  put(32, 0x181, 8);               // info1
  put(40, 0x80000b0e, 8);          // info2: IDT-vectoring #PF with error code
  put(48, 0, 4);
  put(56, 3, 4);  // vcpu_id
  Decoder::Layouts ls;
  ls[ES_KVM_EV_EXIT] = *l;
  Decoder d(ls);
  es::kvmtrace::KvmEvent t;
  ASSERT_TRUE(d.decode(e, t));
  EXPECT_EQ(t.event, es::kvmtrace::Tracepoint::Exit);
  EXPECT_EQ(t.exit.reason, 48u);
  EXPECT_FALSE(t.exit.svm());
  EXPECT_EQ(t.vcpu, 3);
  EXPECT_EQ(t.rip, 0xffffffff81000000ull);
  EXPECT_EQ(t.exit.info2, 0x80000b0eull);
  EXPECT_EQ(t.exit.format, es::kvmtrace::ExitFormat::IntrInfo);
  put(24, 2, 4);  // isa SVM
  ASSERT_TRUE(d.decode(e, t));
  EXPECT_TRUE(t.exit.svm());
  e.event = ES_KVM_EV_PIO;  // no layout for it: refused, not decoded
  EXPECT_FALSE(d.decode(e, t));
}

// Linux 5.10's format files, copied from Debian 11's kernel (5.10.0-32-amd64) running kvm_amd
// in the SVM test bed (./run testbed --suite bullseye). Before 5.12 the emulated VMRUN of an L1
// hypervisor is the SVM-only tracepoint kvm_nested_vmrun (arch/x86/kvm/trace.h then: rip, vmcb,
// nested_rip, int_ctl, event_inj, npt; no isa). It is the same event as kvm_nested_vmenter:
// --events accepts either name, its layout resolves, and it decodes as SVM with L1's EVENTINJ.
TEST(TracefsFormat, Linux510KvmNestedVmrunIsTheNestedEntry) {
  EXPECT_EQ(event_index("kvm_nested_vmrun"), ES_KVM_EV_NESTED_VMENTER);
  EXPECT_EQ(event_index("kvm_nested_vmenter"), ES_KVM_EV_NESTED_VMENTER);
  EXPECT_EQ(older_event_name(ES_KVM_EV_NESTED_VMENTER), "kvm_nested_vmrun");
  EXPECT_EQ(older_event_name(ES_KVM_EV_EXIT), "");
  auto fmt = parse_format(read_data("kvm_nested_vmrun-5.10.format"), "kvm_nested_vmrun-5.10.format");
  ASSERT_TRUE(fmt) << fmt.error();
  auto l = resolve_layout(ES_KVM_EV_NESTED_VMENTER, *fmt, "5.10.0-32-amd64");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->tracepoint, "kvm_nested_vmrun");
  EXPECT_FALSE(l->has(kIsa));
  EXPECT_EQ(l->at[kEventInj].offset, 36 - ES_KVM_RAW_BASE);
  // The format of another event given for this one is still refused.
  auto other = parse_format(read_data("kvm_page_fault-5.10.format"), "f");
  ASSERT_TRUE(other);
  EXPECT_FALSE(resolve_layout(ES_KVM_EV_NESTED_VMENTER, *other, "5.10.0-32-amd64"));

  es_kvm_event e{};
  e.event = ES_KVM_EV_NESTED_VMENTER;
  e.raw_len = l->copy_len;
  auto put = [&](uint32_t entry_off, uint64_t v, size_t n) { std::memcpy(e.raw + entry_off - ES_KVM_RAW_BASE, &v, n); };
  put(8, 0x1f00, 8);       // rip: L1's VMRUN
  put(16, 0x5000, 8);      // vmcb: VMCB12
  put(24, 0x3000, 8);      // nested_rip: L2's RIP
  put(32, 0x01000000, 4);  // int_ctl: V_INTR_MASKING
  put(36, 0x80000021, 4);  // event_inj: valid, type 0 (INTR), vector 0x21 (APM 15.20)
  put(40, 1, 1);           // npt
  Decoder::Layouts ls;
  ls[ES_KVM_EV_NESTED_VMENTER] = *l;
  Decoder d(ls);
  es::kvmtrace::KvmEvent t;
  ASSERT_TRUE(d.decode(e, t));
  EXPECT_EQ(t.event, es::kvmtrace::Tracepoint::NestedVmenter);
  EXPECT_EQ(t.nested_vmenter().isa, es::kvmtrace::Isa::Svm);
  EXPECT_EQ(t.nested_vmenter().l1_rip, 0x1f00u);
  EXPECT_EQ(t.nested_vmenter().vmcb, 0x5000u);
  EXPECT_EQ(t.rip, 0x3000u);
  ASSERT_TRUE(t.injected);
  EXPECT_EQ(t.injected->word, 0x80000021u);
}

// Linux 5.10's kvm_page_fault keeps the error code in 32 bits (`unsigned int error_code`; 6.4
// made it u64): the layout reads 4 bytes there, and the 5.10 kvm_inj_virq has only "irq".
TEST(TracefsFormat, Linux510PageFaultAndInjVirqLayouts) {
  auto pf = parse_format(read_data("kvm_page_fault-5.10.format"), "f");
  ASSERT_TRUE(pf);
  auto l = resolve_layout(ES_KVM_EV_PAGE_FAULT, *pf, "5.10.0-32-amd64");
  ASSERT_TRUE(l) << l.error();
  EXPECT_EQ(l->at[kErrorCode].size, 4u);
  EXPECT_FALSE(l->has(kVcpu));
  auto virq = parse_format(read_data("kvm_inj_virq-5.10.format"), "f");
  ASSERT_TRUE(virq);
  auto lv = resolve_layout(ES_KVM_EV_INJ_VIRQ, *virq, "5.10.0-32-amd64");
  ASSERT_TRUE(lv) << lv.error();
  EXPECT_TRUE(lv->has(kVector));
  EXPECT_FALSE(lv->has(kReinjected));
}

TEST(TracefsFormat, OlderKernelWithoutIntrInfoIsTheInfoPairEra) {
  auto fmt = parse_format(kExit54, "5.4");
  ASSERT_TRUE(fmt) << fmt.error();
  auto l = resolve_layout(ES_KVM_EV_EXIT, *fmt, "5.4.0");
  ASSERT_TRUE(l) << l.error();
  EXPECT_FALSE(l->has(kIntrInfo));
  EXPECT_FALSE(l->has(kVcpu));
  ASSERT_EQ(l->optional_missing.size(), 3u);  // vcpu_id, intr_info, error_code
  Decoder::Layouts ls;
  ls[ES_KVM_EV_EXIT] = *l;
  es_kvm_event e{};
  e.event = ES_KVM_EV_EXIT;
  e.raw_len = l->copy_len;
  es::kvmtrace::KvmEvent t;
  ASSERT_TRUE(Decoder(ls).decode(e, t));
  e.raw_len = 0;  // the probe could not copy the entry: not decoded as zeros
  EXPECT_FALSE(Decoder(ls).decode(e, t));
  EXPECT_EQ(t.exit.format, es::kvmtrace::ExitFormat::InfoPair);  // info2 = VM-exit intr info then
  EXPECT_EQ(t.vcpu, -1);
}

TEST(TracefsFormat, UnknownLayoutIsRefusedNamingEventAndKernel) {
  const std::string good = read_data("kvm_exit-6.18.format");
  ASSERT_FALSE(good.empty());
  // A kernel that renamed info2: the event is refused, not decoded at a guessed offset.
  auto renamed = parse_format(replace(good, "u64 info2;", "u64 info_two;"), "f");
  ASSERT_TRUE(renamed);
  auto r = resolve_layout(ES_KVM_EV_EXIT, *renamed, "9.9.9-test");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("kvm_exit"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("9.9.9-test"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("'info2'"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("--events"), std::string::npos) << r.error();
  // A field whose size changed to one the decoder does not read.
  auto resized = parse_format(
      replace(good, "field:u32 intr_info;\toffset:48;\tsize:4;", "field:u32 intr_info;\toffset:48;\tsize:3;"), "f");
  ASSERT_TRUE(resized);
  r = resolve_layout(ES_KVM_EV_EXIT, *resized, "9.9.9-test");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("intr_info"), std::string::npos) << r.error();
  // A field moved past the bytes the probe copies.
  auto moved = parse_format(replace(good, "u64 info1;\toffset:32;", "u64 info1;\toffset:96;"), "f");
  ASSERT_TRUE(moved);
  r = resolve_layout(ES_KVM_EV_EXIT, *moved, "9.9.9-test");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("offset 96"), std::string::npos) << r.error();
  // The format of another event.
  auto entry = parse_format(read_data("kvm_entry-6.18.format"), "f");
  ASSERT_TRUE(entry);
  EXPECT_FALSE(resolve_layout(ES_KVM_EV_EXIT, *entry, "6.18"));
  EXPECT_TRUE(resolve_layout(ES_KVM_EV_ENTRY, *entry, "6.18"));
}

TEST(TracefsFormat, GarbageIsAnErrorNotACrash) {
  EXPECT_FALSE(parse_format("", "empty"));
  EXPECT_FALSE(parse_format("hello\nworld\n", "text"));
  auto bad = parse_format("name: kvm_exit\nformat:\n\tfield:u32 x;\toffset:abc;\tsize:4;\n", "bad");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("bad"), std::string::npos);
  std::string noise;
  for (int i = 0; i < 4096; ++i) noise += static_cast<char>((i * 7919) & 0xFF);
  (void)parse_format(noise, "noise");
  (void)parse_format("name: kvm_exit\nformat:\nfield:;;;;\nfield:x offset:;size:\n", "fields");
}

// The running kernel: every kvm event exitscope records must resolve (else this kernel's
// formats need a look). Format files are readable by root only.
TEST(TracefsFormat, ThisKernelsFormatsAreKnown) {
  auto tracefs = find_tracefs();
  if (!tracefs) GTEST_SKIP() << tracefs.error();
  if (::access((*tracefs + "/events/kvm/kvm_exit/format").c_str(), R_OK) != 0)
    GTEST_SKIP() << "cannot read the kvm tracepoint formats (needs root)";
  for (int e = 0; e < ES_KVM_EV_COUNT; ++e) {
    auto l = load_layout(*tracefs, e, "this kernel");
    EXPECT_TRUE(l) << l.error();
  }
}

}  // namespace
