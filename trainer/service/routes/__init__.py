"""The trainer API's blueprints, one per area: health and keys, datasets, jobs."""
