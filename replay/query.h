// The filter query language of the GUI's filter box and `exitscope events --query`:
// space-separated key:value terms, all of which must match, e.g.
//   reason:EPT_VIOLATION vector:0x20 level:2 chain:17 kind:exit vcpu:0 from:1us to:2ms
// Keys: kind, reason, vector, vcpu, level, chain, from, to (case-insensitive). kind takes a
// kind name with or without VM_ (exit, entry, delivery, decision, ...) or a number; reason
// what `events --reason` takes (VMX names; on AMD recordings SVM names too: reason:npf,
// reason:GP_excp). Unknown keys and bad values are one-sentence errors.
// Recording::for_each_event answers a parsed query through the indexes (Recording::filter_sql):
// kind / reason on events_kind_reason, vcpu, from / to, chain on theirs; vector and level in
// SQL without an index; the decoded checks run only on the rows SQL narrowed to.
#pragma once

#include <string>
#include <string_view>

#include "replay/recording.h"
#include "schema/result.h"

namespace es::replay {

Result<EventFilter> parse_query(std::string_view text);
// "kind, reason, vector, vcpu, level, chain, from, to"
std::string query_key_list();

}  // namespace es::replay
