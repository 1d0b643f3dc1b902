"""Training: recipes (TOML), the trainer, EMA, distillation, Noisy Student and torchrun/DDP.

Public entry points (import the module; ``import edgecnn.train`` itself stays torch-free):

* :func:`edgecnn.train.recipe.load_recipe` — a validated :class:`~edgecnn.train.recipe.Recipe` from a file or a
  shipped name (``mnist_embedded``, ``imagenet_mobilenet_v3``), with ``section.key=value`` overrides;
* :func:`edgecnn.train.trainer.fit` — train a recipe into a run directory (checkpoints, JSONL log, curves);
* :class:`edgecnn.train.loop.StepLoop` — the optimizer-step loop the trainer and QAT fine-tuning both run on;
* :func:`edgecnn.train.noisy_student.noisy_student` — self-training on a low-label split (Xie et al. 2020);
* :func:`edgecnn.train.quick.train_embedded_default` — the demo: MNIST digits in a few minutes on 2 cores.

Multi-process: ``torchrun --nproc_per_node=N -m edgecnn train RECIPE`` (DDP; gloo on CPU, NCCL on GPUs).
"""
