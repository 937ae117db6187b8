/* The `sipguard sig` command (signature tools), entered from the sipguard CLI. */
#ifndef SIPGUARD_CMD_SIG_H
#define SIPGUARD_CMD_SIG_H

int cmd_sig(int argc, char **argv);

#endif
