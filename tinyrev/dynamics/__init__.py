"""Why the reversal curse happens (lesson 05): the training dynamics of Zhu et al. (2024).

Reading order: symbolic.py (single-token pairs and chains), experiment.py (the bilinear model and
tinyrev's own decoders trained on them, and the weight asymmetry they end with).
"""
