"""Trainer, recipes, EMA, Noisy Student, distillation, DDP (issue: training)."""
