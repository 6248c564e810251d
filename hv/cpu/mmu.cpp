// Guest paging (Vol. 3A 4.5 "4-Level Paging and 5-Level Paging") followed by EPT
// (Vol. 3C 29.3.2 "EPT Translation Mechanism"), with the faults each raises:
// #PF with the error code of Vol. 3A 4.7 "Page-Fault Exceptions", EPT violations with the
// qualification of Vol. 3C 28.2.1 Table 28-7, EPT misconfigurations (29.3.3.1).
#include <algorithm>
#include <cstring>

#include "hv/cpu/cpu_impl.h"

namespace es::hv {

using arch::EptViolationQual;

namespace {
constexpr bool canonical(uint64_t a) { return static_cast<uint64_t>(static_cast<int64_t>(a << 16) >> 16) == a; }
}  // namespace

// EPT walk. Every guest-physical access, including the guest page walk's own reads of paging
// structures and its A/D writes, goes through here (Vol. 3C 29.3.2: "guest-physical
// addresses used by the guest paging structures are translated by EPT").
uint64_t Cpu::Impl::ept_translate(uint64_t gpa, Access acc, bool gla_valid, bool translated, uint64_t lin,
                                  uint8_t* perm_out) {
  if (!ept_on_) {
    if (perm_out) *perm_out = tlb_perm::kEptR | tlb_perm::kEptW | tlb_perm::kEptX;
    return gpa;
  }
  uint64_t table = eptp_ & arch::ept::kAddrMask;
  uint64_t perm = 7;  // logical AND of bits 2:0 over the entries used (Table 28-7 bits 5:3)
  uint64_t page_mask = 0xFFF;
  bool present = true;
  uint64_t entry = 0;
  for (int level = 3; level >= 0; --level) {
    const uint64_t slot = table + ((gpa >> (12 + 9 * level)) & 0x1FF) * 8;
    if (!mem_.read(slot, entry)) abort_internal(ES_ERROR_BAD_MEMORY, slot, gpa);
    if ((entry & 7) == 0) {
      present = false;
      perm = 0;
      break;
    }
    // Vol. 3C 29.3.3.1 "EPT Misconfigurations": write permission without read permission.
    if ((entry & arch::ept::kWrite) && !(entry & arch::ept::kRead)) {
      exit_ = {};
      exit_.reason = static_cast<uint32_t>(arch::BasicExitReason::EptMisconfig);
      exit_.guest_phys = gpa;
      abort_exit();
    }
    perm &= entry & 7;
    if ((level == 2 || level == 1) && (entry & arch::ept::kLargePage)) {
      page_mask = (1ull << (12 + 9 * level)) - 1;
      break;
    }
    if (level == 0) break;
    table = entry & arch::ept::kAddrMask;
  }
  const uint64_t need = acc == Access::Read    ? arch::ept::kRead
                        : acc == Access::Write ? arch::ept::kWrite
                                               : arch::ept::kExecute;
  if (!present || !(perm & need)) {
    // Table 28-7 "Exit Qualification for EPT Violations".
    uint64_t q = acc == Access::Read    ? EptViolationQual::kRead
                 : acc == Access::Write ? EptViolationQual::kWrite
                                        : EptViolationQual::kFetch;
    q |= (perm & 7) << 3;
    if (gla_valid) {
      q |= EptViolationQual::kLinearValid;
      if (translated) q |= EptViolationQual::kTranslatedAccess;
    }
    exit_ = {};
    exit_.reason = static_cast<uint32_t>(arch::BasicExitReason::EptViolation);
    exit_.qualification = q;
    exit_.guest_phys = gpa;
    exit_.guest_linear = gla_valid ? lin : 0;
    abort_exit();
  }
  const uint64_t hpa = ((entry & arch::ept::kAddrMask) & ~page_mask) | (gpa & page_mask);
  if (perm_out)
    *perm_out = static_cast<uint8_t>(((perm & 1) ? tlb_perm::kEptR : 0) | ((perm & 2) ? tlb_perm::kEptW : 0) |
                                     ((perm & 4) ? tlb_perm::kEptX : 0));
  return hpa;
}

// Guest 4-level page walk, Vol. 3A 4.5.4 "Linear-Address Translation with 4-Level Paging",
// access rights per 4.6 "Access Rights", A/D flags per 4.8 "Accessed and Dirty Flags".
uint64_t Cpu::Impl::walk(uint64_t lin, Access acc, bool user) {
  using namespace arch::pte;
  auto pf = [&](bool present_violation, bool rsvd) {
    uint32_t ec = 0;
    if (present_violation) ec |= arch::pf_error::kPresent;
    if (acc == Access::Write) ec |= arch::pf_error::kWrite;
    if (user) ec |= arch::pf_error::kUser;
    if (rsvd) ec |= arch::pf_error::kReservedBit | arch::pf_error::kPresent;
    if (acc == Access::Fetch && (st_.efer & arch::efer::kNXE)) ec |= arch::pf_error::kFetch;
    raise_pf(lin, ec);
  };
  if (!(st_.cr0 & arch::cr0::kPG)) {
    // Not reachable in 64-bit mode; kept so a bad state cannot index garbage.
    abort_internal(ES_ERROR_INVALID_STATE, 0x1001);
  }
  uint64_t entry_gpa[4];
  uint64_t entries[4];
  int used = 0;
  uint64_t table = st_.cr3 & kAddrMask;
  bool u = true, w = true, nx = false;
  uint64_t page_mask = 0xFFF;
  uint64_t leaf = 0;
  for (int level = 3; level >= 0; --level) {
    const uint64_t gpa = table + ((lin >> (12 + 9 * level)) & 0x1FF) * 8;
    const uint64_t hpa = ept_translate(gpa, Access::Read, true, false, lin, nullptr);
    uint64_t e = 0;
    if (!mem_.read(hpa, e)) abort_internal(ES_ERROR_BAD_MEMORY, hpa, gpa);
    entry_gpa[used] = gpa;
    entries[used] = e;
    ++used;
    if (!(e & kPresent)) pf(false, false);
    // Reserved bits (4.5.4 / Table 4-20): PS in a PML4E, XD without EFER.NXE.
    if ((level == 3 && (e & kLargePage)) || ((e & kNoExecute) && !(st_.efer & arch::efer::kNXE))) pf(true, true);
    u = u && (e & kUser);
    w = w && (e & kWrite);
    nx = nx || (e & kNoExecute);
    if ((level == 2 || level == 1) && (e & kLargePage)) {
      page_mask = (1ull << (12 + 9 * level)) - 1;
      leaf = e;
      break;
    }
    if (level == 0) {
      leaf = e;
      break;
    }
    table = e & kAddrMask;
  }
  // Access rights, 4.6.1 "Determination of Access Rights".
  if (user && !u) pf(true, false);
  if (acc == Access::Write && !w && (user || (st_.cr0 & arch::cr0::kWP))) pf(true, false);
  if (acc == Access::Fetch && nx && (st_.efer & arch::efer::kNXE)) pf(true, false);
  // Accessed / dirty flags: the processor writes them (guest-physical writes through EPT).
  for (int i = 0; i < used; ++i) {
    uint64_t want = entries[i] | kAccessed;
    if (i == used - 1 && acc == Access::Write) want |= kDirty;
    if (want != entries[i]) {
      const uint64_t hpa = ept_translate(entry_gpa[i], Access::Write, true, false, lin, nullptr);
      if (!mem_.write(hpa, want)) abort_internal(ES_ERROR_BAD_MEMORY, hpa, entry_gpa[i]);
      note_write(hpa, 8);
      entries[i] = want;
    }
  }
  const uint64_t gpa = ((leaf & kAddrMask) & ~page_mask) | (lin & page_mask);
  uint8_t eperm = 0;
  const uint64_t hpa = ept_translate(gpa, acc, true, true, lin, &eperm);
  if (!mem_.contains(hpa & ~0xFFFull, 4096)) abort_internal(ES_ERROR_BAD_MEMORY, hpa, gpa);
  TlbEntry& t = tlb_[(lin >> 12) % kTlbSize];
  t.tag = lin >> 12;
  t.hpa_page = hpa & ~0xFFFull;
  t.gpa_page = gpa & ~0xFFFull;
  t.perm = static_cast<uint8_t>(eperm | (u ? tlb_perm::kUser : 0) | (w ? tlb_perm::kWritable : 0) |
                                (nx ? tlb_perm::kNx : 0) | ((entries[used - 1] & kDirty) ? tlb_perm::kDirty : 0));
  return hpa;
}

uint64_t Cpu::Impl::translate(uint64_t lin, Access acc, bool user) {
  const TlbEntry& t = tlb_[(lin >> 12) % kTlbSize];
  if (t.tag == (lin >> 12)) {
    const uint8_t p = t.perm;
    bool ok = !user || (p & tlb_perm::kUser);
    switch (acc) {
      case Access::Read: ok = ok && (p & tlb_perm::kEptR); break;
      case Access::Write:
        ok = ok && (p & tlb_perm::kEptW) && (p & tlb_perm::kDirty) &&
             ((p & tlb_perm::kWritable) || (!user && !(st_.cr0 & arch::cr0::kWP)));
        break;
      case Access::Fetch:
        ok = ok && (p & tlb_perm::kEptX) && !((p & tlb_perm::kNx) && (st_.efer & arch::efer::kNXE));
        break;
    }
    if (ok) return t.hpa_page | (lin & 0xFFF);
  }
  return walk(lin, acc, user);
}

uint64_t Cpu::Impl::read_lin(uint64_t lin, unsigned size, bool user, bool stack) {
  if (!canonical(lin) || !canonical(lin + size - 1)) {
    if (stack) raise_exc(arch::kSS, true, 0);
    raise_gp(0);
  }
  uint64_t v = 0;
  if (((lin & 0xFFF) + size) <= 4096) {
    const uint64_t hpa = translate(lin, Access::Read, user);
    const uint8_t* p = mem_.ptr(hpa, size);
    if (!p) abort_internal(ES_ERROR_BAD_MEMORY, hpa);
    std::memcpy(&v, p, size);
    return v;
  }
  uint8_t buf[8];
  for (unsigned i = 0; i < size; ++i) {
    const uint64_t hpa = translate(lin + i, Access::Read, user);
    const uint8_t* p = mem_.ptr(hpa);
    if (!p) abort_internal(ES_ERROR_BAD_MEMORY, hpa);
    buf[i] = *p;
  }
  std::memcpy(&v, buf, size);
  return v;
}

void Cpu::Impl::write_lin(uint64_t lin, unsigned size, uint64_t v, bool user, bool stack) {
  if (!canonical(lin) || !canonical(lin + size - 1)) {
    if (stack) raise_exc(arch::kSS, true, 0);
    raise_gp(0);
  }
  if (((lin & 0xFFF) + size) <= 4096) {
    const uint64_t hpa = translate(lin, Access::Write, user);
    uint8_t* p = mem_.ptr(hpa, size);
    if (!p) abort_internal(ES_ERROR_BAD_MEMORY, hpa);
    std::memcpy(p, &v, size);
    note_write(hpa, size);
    return;
  }
  // Page-crossing write: translate both pages before writing anything.
  const unsigned first = 4096 - static_cast<unsigned>(lin & 0xFFF);
  const uint64_t h0 = translate(lin, Access::Write, user);
  const uint64_t h1 = translate(lin + first, Access::Write, user);
  uint8_t buf[8];
  std::memcpy(buf, &v, size);
  uint8_t* p0 = mem_.ptr(h0, first);
  uint8_t* p1 = mem_.ptr(h1, size - first);
  if (!p0 || !p1) abort_internal(ES_ERROR_BAD_MEMORY, p0 ? h1 : h0);
  std::memcpy(p0, buf, first);
  std::memcpy(p1, buf + first, size - first);
  note_write(h0, first);
  note_write(h1, size - first);
}

// A write to a host page that holds cached decoded instructions invalidates them
// (self-modifying code, loaders).
void Cpu::Impl::note_write(uint64_t hpa, unsigned size) {
  const uint64_t p0 = hpa >> 12, p1 = (hpa + size - 1) >> 12;
  for (uint64_t p = p0; p <= p1 && p < code_page_.size(); ++p)
    if (code_page_[p]) ++page_gen_[p];
}

bool Cpu::Impl::probe_ept(uint64_t eptp, bool ept_on, uint64_t gpa, uint64_t& hpa) const {
  if (!ept_on) {
    hpa = gpa;
    return mem_.contains(gpa);
  }
  uint64_t table = eptp & arch::ept::kAddrMask;
  for (int level = 3; level >= 0; --level) {
    uint64_t e = 0;
    if (!mem_.read(table + ((gpa >> (12 + 9 * level)) & 0x1FF) * 8, e)) return false;
    if ((e & 7) == 0 || ((e & 2) && !(e & 1))) return false;
    if ((level == 2 || level == 1) && (e & arch::ept::kLargePage)) {
      const uint64_t m = (1ull << (12 + 9 * level)) - 1;
      hpa = ((e & arch::ept::kAddrMask) & ~m) | (gpa & m);
      return mem_.contains(hpa);
    }
    if (level == 0) {
      hpa = (e & arch::ept::kAddrMask) | (gpa & 0xFFF);
      return mem_.contains(hpa);
    }
    table = e & arch::ept::kAddrMask;
  }
  return false;
}

bool Cpu::Impl::probe_linear(uint64_t cr3, uint64_t eptp, bool ept_on, uint64_t lin, uint64_t& gpa) const {
  uint64_t table = cr3 & arch::pte::kAddrMask;
  for (int level = 3; level >= 0; --level) {
    uint64_t hpa = 0, e = 0;
    if (!probe_ept(eptp, ept_on, table + ((lin >> (12 + 9 * level)) & 0x1FF) * 8, hpa) || !mem_.read(hpa, e))
      return false;
    if (!(e & arch::pte::kPresent)) return false;
    if ((level == 2 || level == 1) && (e & arch::pte::kLargePage)) {
      const uint64_t m = (1ull << (12 + 9 * level)) - 1;
      gpa = ((e & arch::pte::kAddrMask) & ~m) | (lin & m);
      return true;
    }
    if (level == 0) {
      gpa = (e & arch::pte::kAddrMask) | (lin & 0xFFF);
      return true;
    }
    table = e & arch::pte::kAddrMask;
  }
  return false;
}

unsigned Cpu::Impl::peek_insn_bytes(uint64_t rip, uint8_t out[15]) const {
  unsigned n = 0;
  while (n < 15) {
    uint64_t gpa = 0, hpa = 0;
    if (!probe_linear(st_.cr3, eptp_, ept_on_, rip + n, gpa) || !probe_ept(eptp_, ept_on_, gpa, hpa)) break;
    const unsigned chunk = std::min<unsigned>(15 - n, 4096 - static_cast<unsigned>((rip + n) & 0xFFF));
    const uint8_t* p = mem_.ptr(hpa, chunk);
    if (!p) break;
    std::memcpy(out + n, p, chunk);
    n += chunk;
  }
  return n;
}

}  // namespace es::hv
