"""The daemon process (``helperd``): start-up, socket server, activation, peer checks, hardening.

Only code that runs inside the daemon lives here; `helperd.daemon.main` is the entry point.
"""
