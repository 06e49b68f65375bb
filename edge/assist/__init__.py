"""Model-assisted labelling: suggestions from the active model, similarity to labelled examples, bulk suggest and
accept, the device's inbox of frames worth reviewing, and comparing a new version with the running one.

Everything runs on the device's runtime (edge.runtime wrappers, the model slot); never torch. Suggestions are kept
apart from annotations (edge.store.assist_rows) and become annotations only through `accept` (a person's action).
"""
