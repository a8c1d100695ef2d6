/* What the CLI's files share: main.c (run, variants) and vms.c (start, exec, ls, stop, logs). */
#ifndef EC1_CLI_H
#define EC1_CLI_H

#include "ec1/ec1.h"

#define EXIT_EC1_ERROR 125

extern const char start_usage[];

/* ec1 run (start_dir NULL), or the VM process of ec1 start (main.c). */
int vm_command(int argc, char **argv, const char *start_dir);
/* ec1 start's VM process once its context is set: starts it, serves, cleans up (vms.c). */
int serve_started(struct ec1_ctx *ctx, const char *dir);

int cmd_start(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_logs(int argc, char **argv);

#endif
