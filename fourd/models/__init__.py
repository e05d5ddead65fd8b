"""Plain nn.Modules: the 4DS encoder, the video MAE, attention backends and the size registry."""
