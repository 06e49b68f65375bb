"""The training service: REST API, persistent job store, worker processes (docs/TRAINER_API.md)."""
