"""tinyrev: a small Llama-like decoder for studying the reversal curse and length generalization.

The package is meant to be read, in the order of the lessons:
- core (lessons 01-03): rope.py, attention.py, model.py, then tokenizer.py, objectives.py,
  trainer.py; checks.py and cli.py hold the input checks every part shares;
- reversal/ (lesson 03): facts.py, factsio.py, evaluate.py, experiment.py;
- length/ (lesson 04): longtext.py, experiment.py;
- dynamics/ (lesson 05): symbolic.py, experiment.py;
- tools/: the student-version generator and the speed benchmark, which no lesson teaches.
How the pieces fit: data (an experiment's package) -> objective (a Batch holding one Pattern) ->
model (the Pattern passed down every layer) -> trainer (fit, checkpoints) -> evaluation (the
objective's own query form). Experiments import the core and never each other.
It leaves out tokenizers beyond a word list, distributed training and anything a small CPU run
does not need.
"""

import warnings

# torch warns at import when numpy is absent; tinyrev never needs numpy, so say nothing
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

__version__ = "0.1.0"
