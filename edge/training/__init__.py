"""The device's side of training: the trainer service's HTTP client and the round trip it drives.

- `client`: `TrainerClient` (the trainer's REST API, standard library only) and its errors;
- `plan`: `training_plan()`, what a run trains on (task, zones) and the readiness gate judged for exactly that;
- `runs`: the records, `RunRequest` (what the user asked for) and `TrainingRun` (what happened);
- `history`: those records on disk (runs.json and each run's report);
- `deploy`: `decide_deployment()`, the pure install -> threshold -> activate decision;
- `runner`: `submit_job()` (dataset + job) and `TrainingRunner`, the whole round trip on a background thread.

Modules are imported by name (nothing is re-exported here), so the review page's plan does not load the client.
"""
