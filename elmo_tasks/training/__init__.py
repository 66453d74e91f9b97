"""Training and evaluation of a head on task features: data, metrics, the trainer."""
