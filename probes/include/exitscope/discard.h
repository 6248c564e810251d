/* es_record.aux of an ES_DECISION_DISCARD record (decisions.def): why the event was thrown away.
 * replay/chains reads it for the chain's outcome (1 coalesced, 2 collapsed, anything else a
 * discard by the hypervisor), the checker for its explanation. Stored in recordings: never
 * renumber, only append. */
#ifndef EXITSCOPE_DISCARD_H
#define EXITSCOPE_DISCARD_H

enum {
  ES_DISCARD_COALESCED = 1,      /* an interrupt whose IRR bit was already set */
  ES_DISCARD_COLLAPSED = 2,      /* an NMI beyond the one latched */
  ES_DISCARD_OUTRANKED = 3,      /* a pending exception outranked its reinjection (an import's inferred
                               discard says 0 for the same) */
  ES_DISCARD_NOT_HANDED_BACK = 4 /* injected by L1 into L2, which never ran, and not handed back to
                                    L1 by L0's exit to it (EXITINTINFO / IDT-vectoring info) */
};

#endif
