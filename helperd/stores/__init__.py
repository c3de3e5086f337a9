"""Where secrets live: the OS keyring or an encrypted file (the `Store` interface is in core)."""
