/* placeholder */
extern int tern_placeholder;
