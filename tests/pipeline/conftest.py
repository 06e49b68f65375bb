"""Pipeline test fixtures: the agent tests' stocked folder camera and tiny signed detector (tests/agent)."""

from tests.agent.conftest import det_bundle, keys_dir, shelf_camera

__all__ = ["det_bundle", "keys_dir", "shelf_camera"]
