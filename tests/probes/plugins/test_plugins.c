/* Plugins for the loader tests, one per behaviour, selected by TEST_PLUGIN_KIND:
 *   1 newer API version than the host   2 refuses to install   3 exports nothing */
#include "exitscope/plugin.h"

#if TEST_PLUGIN_KIND == 1
ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION + 41;
ES_PLUGIN_EXPORT int es_plugin_install(es_plugin_id_t id, const es_plugin_info_t *info, int argc, char **argv) {
  (void)id; (void)info; (void)argc; (void)argv;
  return 0;
}
#elif TEST_PLUGIN_KIND == 2
static void never(es_plugin_id_t id, const struct es_record *rec, void *userdata) { (void)id; (void)rec; (void)userdata; }
ES_PLUGIN_EXPORT int es_plugin_version = ES_PLUGIN_VERSION;
ES_PLUGIN_EXPORT int es_plugin_install(es_plugin_id_t id, const es_plugin_info_t *info, int argc, char **argv) {
  (void)info; (void)argc; (void)argv;
  es_plugin_register_record_cb(id, 1u << ES_KIND_VM_EXIT, never, 0);
  return 7;
}
#else
int not_a_plugin(void);
int not_a_plugin(void) { return 0; }
#endif
