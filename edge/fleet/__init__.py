"""The fleet: device groups, signed bundle announcements over MQTT and staged rollouts (docs/SCALE.md).

`contract` holds the topics and payloads (the product contract), `device` the device side (follow the group's
announcement, fetch, verify, activate, report), `rollout` the controller side (status, staged rollout, rollback),
`simulate` N simulated devices in one process against a real broker.
"""
