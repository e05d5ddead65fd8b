"""Pretraining: the Lightning module and data module, FSDP2 parallelisation, checkpoints, faults, the planner."""
