"""Evaluation: 4D probes on frozen backbones (tasks, metrics, feature cache, readout training) and the report."""
