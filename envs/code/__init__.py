"""The code-interpreter environment: a stateful Python session in a sandbox, reasoning-gym and math tasks.

`solvers` is the expert for the procedural task families: it writes the Python a good agent would run.
"""
