/*
 * commands: the detector's offline commands, entered from the sipguard CLI.
 * Each takes the arguments after its name (argv[0] is the command name) and
 * returns the process exit code (see cmdutil.h).
 */
#ifndef SIPGUARD_COMMANDS_H
#define SIPGUARD_COMMANDS_H

int cmd_train(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_context(int argc, char **argv);
int cmd_info(int argc, char **argv);

#endif
