"""Subcommands of the `shelfwatch` command line (each module exposes `register(subparsers)`)."""
