"""Frames -> model -> zone scores -> zone states with hysteresis -> states and events for the communicator."""
