"""The reversal curse (lesson 03): facts about invented people, trained one way, asked the other.

Reading order: facts.py (the data, in Berglund et al.'s file layout), factsio.py (the same data as
files on disk), evaluate.py (accuracy and log-prob margin, each objective asked its own way),
experiment.py (one run end to end, what train.py and eval.py call). The objectives themselves
are core code (tinyrev/objectives.py): the length and dynamics experiments train with them too.
"""
