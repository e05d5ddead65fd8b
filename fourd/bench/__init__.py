"""Throughput benchmarks of full pretraining steps, the data loader and encoder inference."""
