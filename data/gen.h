/*
 * gen: the labelled SIP traffic generator behind `sipguard gen`.
 *
 * Normal traffic comes from a population of user agents behind one
 * registrar/proxy: users in social cliques, Poisson call arrivals,
 * exponential holding times, digest-authenticated registration with
 * re-registration, INVITE dialogs that are answered, busy, rejected, time
 * out or are cancelled, hold/resume re-INVITEs, OPTIONS keep-alives,
 * presence SUBSCRIBE/NOTIFY and MESSAGE, over UDP and TCP, from several
 * user-agent families that differ in header order, compact or long header
 * names, branch/tag formats and codecs. Attacks are mixed in with their
 * family and scenario labels. Everything is drawn from one seeded generator,
 * so the same seed and options give byte-identical output.
 *
 * Output: PREFIX.pcap (Ethernet, IPv4, UDP/TCP, correct checksums) and
 * PREFIX.labels.csv with one row per SIP message in capture order:
 * index,ts,label,family,scenario,call_id,sender (proxy, user or attacker:
 * attackers send from the documentation address ranges, users and the proxy
 * from 10.0.0.0/8 and 2001:db8::/32). Attack tools (SIPVicious, SIPp) write
 * their messages in their own formats, not in a phone's.
 */
#ifndef SIPGUARD_GEN_H
#define SIPGUARD_GEN_H

/* Entry point of `sipguard gen`. */
int gen_command(int argc, char **argv);

#endif
