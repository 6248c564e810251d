/* exitscope ABI names: the names of kind, decision and violation ids, generated from the same
 * tables as their numbers (record_kinds.def, decisions.def, violations.def), for C plugins, the
 * host and replay/ alike. Header-only (static inline), no allocation; every string returned is a
 * string literal, valid for the life of the process. Unknown ids give "" (never NULL), so a
 * caller can print the result as is.
 *
 * Changelog
 *   1  first version: es_kind_name, es_decision_name, es_violation_name,
 *      es_violation_description.
 */
#ifndef EXITSCOPE_NAMES_H
#define EXITSCOPE_NAMES_H

#include "record.h"

/* "VM_EXIT", "DECISION", ... (the enumerator without ES_KIND_). */
static inline const char* es_kind_name(unsigned kind) {
  switch (kind) {
#define ES_KIND(id, name) \
  case id:                \
    return #name;
#include "record_kinds.def"
#undef ES_KIND
    default: return "";
  }
}

/* "INJECT_NEW", "REQUEUE_FROM_VECTORING", ... (the enumerator without ES_DECISION_). */
static inline const char* es_decision_name(unsigned decision) {
  switch (decision) {
#define ES_DECISION(id, name) \
  case id:                    \
    return #name;
#include "decisions.def"
#undef ES_DECISION
    default: return "";
  }
}

/* The checker rule of an ES_KIND_VIOLATION record's reason: "event-lost", ... */
static inline const char* es_violation_name(unsigned violation) {
  switch (violation) {
#define ES_VIOLATION(id, name, rule, rule_name, description) \
  case id:                                                   \
    return rule_name;
#include "violations.def"
#undef ES_VIOLATION
    default: return "";
  }
}

/* What that rule checks: one sentence with its SDM section. */
static inline const char* es_violation_description(unsigned violation) {
  switch (violation) {
#define ES_VIOLATION(id, name, rule, rule_name, description) \
  case id:                                                   \
    return description;
#include "violations.def"
#undef ES_VIOLATION
    default: return "";
  }
}

#endif /* EXITSCOPE_NAMES_H */
