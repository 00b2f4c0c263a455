"""ALFWorld: a native engine with ALFWorld's semantics and text, a task generator and an expert planner."""
