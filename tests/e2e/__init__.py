"""End-to-end tests: real Poetry, pip, uv and keyring against a real authenticated index."""
