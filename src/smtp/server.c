/* placeholder: filled in by the module owner. */
extern int tern_placeholder_server;
