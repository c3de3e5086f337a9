"""helperctl, the command line: its commands, input and output, and doctor.

It talks to the daemon only through `helperd_client`; `helperd.ctl.main` is the entry point.
"""
