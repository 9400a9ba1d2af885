"""tinyrev: a small Llama-like decoder for studying the reversal curse and length generalization.

The package is meant to be read. Suggested order: rope.py, attention.py, model.py, facts.py,
objectives.py, trainer.py, evaluate.py, experiment.py. It covers the model, the attention
patterns, the data, the training objectives and the loop; it leaves out tokenizers beyond a word
list, distributed training and anything a small CPU run does not need.
"""

__version__ = "0.1.0"
