"""Shared by the daemon and helperctl: protocol models, records, lookup, the service, settings.

No sockets, no signals, no threads of its own: the daemon drives it, helperctl borrows its rules.
"""
