"""AI skills: per camera, small graphs of blocks (models, transforms, time, logic, sinks) run on every frame.

- `registry.py`: the one registry of block types (`@block_type(Config)` on the implementation class); it feeds
  both the `cameras[].skills[].blocks` validation (a discriminated union on `type`) and construction.
- `config.py`: `SkillConfig` and the graph checks (unknown input, a cycle, a sink without input), whose errors
  name the skill, the block and (through edge.config.loader) the YAML line.
- `blocks/`: one file per block type (docs/SKILLS.md documents every one).
- `runner.py`: a camera's skills on one frame, models shared between skills run once, last output per block.
- `models.py`: projects -> their active model, hot-swapped when a new version is activated.
- `webhook.py`: the durable, ordered webhook outbox and its sender; `inbox.py`: frames collected for review.
"""
