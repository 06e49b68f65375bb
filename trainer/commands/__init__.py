"""The trainer's `shelfwatch` subcommands (train, evaluate); each imports torch only when it runs."""
