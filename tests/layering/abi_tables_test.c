/* The ABI's id tables (probes/include/exitscope/record_kinds.def, decisions.def, violations.def)
 * seen from C, as a plugin sees them: the numbers stored in recordings keep their values, the
 * counts match the tables, and every id names itself from the same table (exitscope/names.h).
 * Built as C11 with the plugins' warnings: a C++-only construct in the ABI fails the build. */
#include <stdio.h>
#include <string.h>

#include "exitscope/names.h"
#include "exitscope/record.h"

static int failures;

static void expect_name(const char* what, const char* got, const char* want) {
  if (strcmp(got, want) != 0) {
    printf("FAIL %s: got \"%s\", want \"%s\"\n", what, got, want);
    ++failures;
  }
}

static void expect_eq(const char* what, long got, long want) {
  if (got != want) {
    printf("FAIL %s: got %ld, want %ld\n", what, got, want);
    ++failures;
  }
}

int main(void) {
  /* Numbers stored in recordings since version 1 (record.h changelog): pinned here. */
  expect_eq("ES_KIND_VM_EXIT", ES_KIND_VM_EXIT, 1);
  expect_eq("ES_KIND_VIOLATION", ES_KIND_VIOLATION, 8);
  expect_eq("ES_KIND_NESTED_ENTRY", ES_KIND_NESTED_ENTRY, 12);
  expect_eq("ES_KIND_COUNT", ES_KIND_COUNT, 13);
  expect_eq("ES_DECISION_REQUEUE_FROM_VECTORING", ES_DECISION_REQUEUE_FROM_VECTORING, 4);
  expect_eq("ES_DECISION_RESTORE_NMI_BLOCKING", ES_DECISION_RESTORE_NMI_BLOCKING, 23);
  expect_eq("ES_DECISION_COUNT", ES_DECISION_COUNT, 24);
  expect_eq("ES_VIOLATION_EXIT_EXT_INT_WITH_VECTORING", ES_VIOLATION_EXIT_EXT_INT_WITH_VECTORING, 1);
  expect_eq("ES_VIOLATION_EVENT_LOST", ES_VIOLATION_EVENT_LOST, 3);
  expect_eq("ES_VIOLATION_NO_PROGRESS_CYCLE", ES_VIOLATION_NO_PROGRESS_CYCLE, 10);

  expect_name("kind 1", es_kind_name(ES_KIND_VM_EXIT), "VM_EXIT");
  expect_name("kind 12", es_kind_name(ES_KIND_NESTED_ENTRY), "NESTED_ENTRY");
  expect_name("kind past the table", es_kind_name(ES_KIND_COUNT), "");
  expect_name("decision 7", es_decision_name(ES_DECISION_INJECT_NEW), "INJECT_NEW");
  expect_name("decision past the table", es_decision_name(ES_DECISION_COUNT), "");
  expect_name("violation 3", es_violation_name(ES_VIOLATION_EVENT_LOST), "event-lost");
  expect_name("violation 10", es_violation_name(ES_VIOLATION_NO_PROGRESS_CYCLE), "no-progress-cycle");
  expect_name("violation 0", es_violation_name(0), "");
  if (strstr(es_violation_description(ES_VIOLATION_NMI_WHILE_BLOCKED), "SDM 27.3.1.5") == NULL) {
    printf("FAIL violation 5's description does not cite SDM 27.3.1.5: \"%s\"\n",
           es_violation_description(ES_VIOLATION_NMI_WHILE_BLOCKED));
    ++failures;
  }

  /* Every id below the count has a name: the tables have no gap. */
  for (unsigned k = 0; k < ES_KIND_COUNT; ++k)
    if (es_kind_name(k)[0] == '\0') {
      printf("FAIL kind %u has no name\n", k);
      ++failures;
    }
  for (unsigned d = 0; d < ES_DECISION_COUNT; ++d)
    if (es_decision_name(d)[0] == '\0') {
      printf("FAIL decision %u has no name\n", d);
      ++failures;
    }

  if (failures == 0) printf("ABI tables: ids, counts and names agree\n");
  return failures == 0 ? 0 : 1;
}
