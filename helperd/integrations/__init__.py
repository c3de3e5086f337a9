"""What helperd knows of other tools' files: Poetry's auth.toml, service units, the keyring shim."""
