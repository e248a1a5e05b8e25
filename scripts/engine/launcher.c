/*
 * s3ch-engine: runs ClickHouse from the chDB library the project installs.
 *
 *   s3ch-engine <path/to/libchdb.so> <clickhouse-local arguments...>
 *
 * libchdb.so exports chdb_query_cmdline(argc, argv), clickhouse-local's entry
 * point. It must run on a real thread stack: ClickHouse checks its frame
 * addresses against the thread's stack bounds, so FFI layers that call on a
 * stack of their own (koffi) are refused. A plain C main() is that stack.
 */
#include <dlfcn.h>
#include <stdio.h>

typedef void *(*cmdline_fn)(int, char **);
typedef const char *(*error_fn)(void *);

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s <libchdb.so> <clickhouse-local arguments...>\n", argv[0]);
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    fprintf(stderr, "s3ch-engine: cannot load %s: %s\n", argv[1], dlerror());
    return 2;
  }
  cmdline_fn run = (cmdline_fn)dlsym(lib, "chdb_query_cmdline");
  error_fn error = (error_fn)dlsym(lib, "chdb_result_error");
  if (!run) {
    fprintf(stderr, "s3ch-engine: %s has no chdb_query_cmdline\n", argv[1]);
    return 2;
  }
  /* clickhouse-local parses argv[0] as its program name. */
  argv[1] = "clickhouse";
  void *result = run(argc - 1, argv + 1);
  const char *message = result && error ? error(result) : NULL;
  if (message && *message) {
    fprintf(stderr, "%s\n", message);
    return 1;
  }
  return result ? 0 : 1;
}
