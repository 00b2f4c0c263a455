"""Small text puzzles with checkable answers: the example family, and fast envs for tests."""
