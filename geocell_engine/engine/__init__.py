"""The training engine: configuration, task classes, fit, checkpoints, train / evaluate / predict."""
