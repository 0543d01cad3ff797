/* The Public Suffix List (publicsuffix.org, Debian package publicsuffix):
 * loaded once into a hash table, then the registrable domain of a name by
 * the list's algorithm (rules, wildcards, exceptions; ICANN and PRIVATE
 * sections alike, as RFC 7489 §3.2 uses the whole list). Names are kept
 * and compared as lower-case A-labels; U-labels are converted (IDNA2008).
 * SECURITY: looked-up names come from peers: bounded by PSL_INPUT_MAX and
 * DNS label and name lengths, no recursion. The list file is bounded in
 * size, rules and labels. After loading the table is read-only, so any
 * number of threads may look up names at once. */
#ifndef TERN_MAILAUTH_PSL_H
#define TERN_MAILAUTH_PSL_H

#include <stddef.h>

#define PSL_DEFAULT_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
#define PSL_FILE_MAX (8 * 1024 * 1024) /* bytes of the list file */
#define PSL_RULES_MAX 200000           /* rules kept (2023: 9506) */
#define PSL_LINE_MAX 1024              /* a longer rule line is skipped */
#define PSL_NAME_MAX 253               /* a normalized name, no final dot */
#define PSL_LABEL_MAX 63
#define PSL_LABELS_MAX 127 /* labels of a name: 253 bytes hold no more */
#define PSL_INPUT_MAX 1024 /* bytes of a name given in U-label form */

struct psl;

/* Load the list at path (PSL_DEFAULT_PATH on Debian). NULL on error with
 * *error_r a malloc'd message naming the file and the reason. */
struct psl *psl_load(const char *path, char **error_r);
/* The same from text in memory (tests, fuzzing). */
struct psl *psl_parse(const char *data, size_t len, char **error_r);
void psl_free(struct psl **psl);
/* Rules kept, and rule lines skipped (unsupported wildcard position, a
 * label IDNA2008 refuses, over a bound). */
size_t psl_rule_count(const struct psl *psl);
size_t psl_skipped_count(const struct psl *psl);

/* name (len bytes, not NUL-terminated) as the list keeps names: ASCII
 * lower-cased, U-labels converted to A-labels, into out (at least
 * PSL_NAME_MAX + 1 bytes). Labels hold letters, digits, '-' and '_' (DNS
 * names under _dmarc and in From addresses do use '_'); no empty label,
 * no leading or final dot. Returns the length, or -1. */
int psl_domain_normalize(const char *name, size_t len, char *out,
                         size_t outlen);

/* The registrable domain of name (any case, A- or U-labels): its public
 * suffix plus one label, normalized, into out (PSL_NAME_MAX + 1 bytes).
 * Returns 0; 1 when name is itself a public suffix (out holds the
 * normalized name); -1 when name is NULL or does not normalize (out is
 * ""). out may be name itself. */
int psl_registrable_domain(const struct psl *psl, const char *name, char *out,
                           size_t outlen);

#endif
