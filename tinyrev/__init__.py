"""tinyrev: a small Llama-like decoder for studying the reversal curse and length generalization.

The package is meant to be read. Suggested order: rope.py, attention.py, model.py, facts.py,
objectives.py, trainer.py, evaluate.py, experiment.py; then symbolic.py and dynamics.py, which ask
why the curse happens (lesson 05); assignment.py writes the course's student version. It covers
the model, the attention patterns, the data, the training objectives and the loop; it leaves out
tokenizers beyond a word list, distributed training and anything a small CPU run does not need.
"""

import warnings

# torch warns at import when numpy is absent; tinyrev never needs numpy, so say nothing
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

__version__ = "0.1.0"
