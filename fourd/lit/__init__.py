"""Lightning glue: the pretraining module, strategies, data module, callbacks and run assembly."""
